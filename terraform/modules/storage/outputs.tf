output "bucket" {
  description = "The photos bucket."
  value       = yandex_storage_bucket.photos.bucket
}

output "access_key" {
  description = "lots' S3 access key id."
  value       = yandex_iam_service_account_static_access_key.photos.access_key
}

output "secret_key" {
  description = "lots' S3 secret key."
  value       = yandex_iam_service_account_static_access_key.photos.secret_key
  sensitive   = true
}
