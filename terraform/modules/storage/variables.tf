variable "name" {
  description = "Prefix of every resource's name."
  type        = string
}

variable "folder_id" {
  description = "The folder the service accounts' roles apply to."
  type        = string
}

variable "bucket" {
  description = "The photos bucket's name."
  type        = string
}

variable "deleted_photo_retention_days" {
  description = "Days a noncurrent (deleted or replaced) photo version is kept."
  type        = number
}

variable "kms_rotation_period" {
  description = "Rotation period of the bucket's encryption key."
  type        = string
}
