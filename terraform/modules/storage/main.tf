# Lot photos: a private, versioned bucket encrypted with a rotating KMS key. Two service accounts:
# one that may administer buckets (versioning and encryption need storage.admin) and is used only
# by Terraform through its own static key, and the one lots uses, which may read, write and delete
# objects and use the key, nothing else.

resource "yandex_kms_symmetric_key" "photos" {
  name                = "${var.name}-photos"
  description         = "Encrypts lot photos at rest"
  default_algorithm   = "AES_256"
  rotation_period     = var.kms_rotation_period
  deletion_protection = true
}

resource "yandex_iam_service_account" "bucket_admin" {
  name        = "${var.name}-bucket-admin"
  description = "Terraform's identity for the photos bucket's settings"
  folder_id   = var.folder_id
}

resource "yandex_resourcemanager_folder_iam_member" "bucket_admin" {
  folder_id = var.folder_id
  role      = "storage.admin"
  member    = "serviceAccount:${yandex_iam_service_account.bucket_admin.id}"
}

resource "yandex_resourcemanager_folder_iam_member" "bucket_admin_kms" {
  folder_id = var.folder_id
  role      = "kms.keys.encrypterDecrypter"
  member    = "serviceAccount:${yandex_iam_service_account.bucket_admin.id}"
}

resource "yandex_iam_service_account_static_access_key" "bucket_admin" {
  service_account_id = yandex_iam_service_account.bucket_admin.id
  description        = "Terraform: the photos bucket's settings"
}

resource "yandex_iam_service_account" "photos" {
  name        = "${var.name}-photos"
  description = "lots: reads and writes lot photos"
  folder_id   = var.folder_id
}

resource "yandex_resourcemanager_folder_iam_member" "photos" {
  for_each = toset(["storage.editor", "kms.keys.encrypterDecrypter"])

  folder_id = var.folder_id
  role      = each.key
  member    = "serviceAccount:${yandex_iam_service_account.photos.id}"
}

resource "yandex_iam_service_account_static_access_key" "photos" {
  service_account_id = yandex_iam_service_account.photos.id
  description        = "lots: S3 credentials for the photos bucket"
}

resource "yandex_storage_bucket" "photos" {
  bucket        = var.bucket
  access_key    = yandex_iam_service_account_static_access_key.bucket_admin.access_key
  secret_key    = yandex_iam_service_account_static_access_key.bucket_admin.secret_key
  folder_id     = var.folder_id
  force_destroy = false

  anonymous_access_flags {
    read        = false
    list        = false
    config_read = false
  }

  versioning {
    enabled = true
  }

  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        kms_master_key_id = yandex_kms_symmetric_key.photos.id
        sse_algorithm     = "aws:kms"
      }
    }
  }

  # A deleted or replaced photo stays recoverable for a while, then goes; the delete markers
  # left behind and abandoned uploads are cleaned up too.
  lifecycle_rule {
    id      = "expire-deleted-photos"
    enabled = true

    filter {
      prefix = ""
    }

    noncurrent_version_expiration {
      days = var.deleted_photo_retention_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload_days = 1
  }

  depends_on = [
    yandex_resourcemanager_folder_iam_member.bucket_admin,
    yandex_resourcemanager_folder_iam_member.bucket_admin_kms,
  ]
}
