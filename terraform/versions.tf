terraform {
  # 1.11 for write-only arguments (password_wo): database passwords never reach the state.
  required_version = ">= 1.11.0"

  required_providers {
    yandex = {
      source  = "yandex-cloud/yandex"
      version = "~> 0.222.0"
    }
  }

  # Remote state in Object Storage; the bucket, key and credentials come at `terraform init`
  # (docs/infrastructure.md): nothing secret is written here.
  backend "s3" {
    endpoints = {
      s3 = "https://storage.yandexcloud.net"
    }
    region                      = "ru-central1"
    key                         = "gavel/terraform.tfstate"
    skip_region_validation      = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_s3_checksum            = true
  }
}
