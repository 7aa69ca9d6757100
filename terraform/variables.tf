variable "cloud_id" {
  description = "The Yandex Cloud to deploy into (yc resource-manager cloud list)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{20}$", var.cloud_id))
    error_message = "cloud_id is a 20-character Yandex Cloud id, e.g. b1gxxxxxxxxxxxxxxxxx."
  }
}

variable "folder_id" {
  description = "The folder every resource lives in; give Gavel a folder of its own (the service accounts' roles are folder-wide)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{20}$", var.folder_id))
    error_message = "folder_id is a 20-character Yandex Cloud id, e.g. b1gxxxxxxxxxxxxxxxxx."
  }
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "gavel"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name is 2-21 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "zones" {
  description = "Availability zones, one subnet each; the machines go in the first, managed databases span them all."
  type        = list(string)
  default     = ["ru-central1-a", "ru-central1-b", "ru-central1-d"]

  validation {
    condition     = length(var.zones) >= 1 && alltrue([for z in var.zones : can(regex("^ru-central1-[abd]$", z))])
    error_message = "zones lists one or more of ru-central1-a, ru-central1-b, ru-central1-d."
  }
}

variable "subnet_cidrs" {
  description = "One private IPv4 range per zone, in the same order as zones."
  type        = list(string)
  default     = ["10.128.0.0/24", "10.129.0.0/24", "10.130.0.0/24"]

  validation {
    condition     = alltrue([for c in var.subnet_cidrs : can(cidrhost(c, 0)) && tonumber(split("/", c)[1]) >= 16 && tonumber(split("/", c)[1]) <= 28])
    error_message = "Each subnet is an IPv4 CIDR from /16 to /28."
  }

  validation {
    condition     = length(var.subnet_cidrs) == length(var.zones)
    error_message = "subnet_cidrs needs exactly one range per zone."
  }
}

variable "admin_cidrs" {
  description = "Where operators connect from: SSH, Jenkins, Grafana and Prometheus accept only these ranges."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "admin_cidrs lists the operators' IPv4 ranges; 0.0.0.0/0 is not an admin range."
  }
}

variable "ssh_user" {
  description = "The login cloud-init creates on every machine for Ansible."
  type        = string
  default     = "gavel-admin"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user)) && !contains(["root", "admin"], var.ssh_user)
    error_message = "ssh_user is a lower-case login name other than root or admin."
  }
}

variable "ssh_public_key" {
  description = "The operator's SSH public key (the contents, e.g. file(\"~/.ssh/id_ed25519.pub\"))."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key is an OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256)."
  }
}

variable "image_family" {
  description = "The boot image family: the Ansible roles are written and tested for Debian 12."
  type        = string
  default     = "debian-12"

  validation {
    condition     = contains(["debian-12"], var.image_family)
    error_message = "The roles support debian-12 only."
  }
}

variable "platform_id" {
  description = "The CPU platform of every machine."
  type        = string
  default     = "standard-v3"

  validation {
    condition     = contains(["standard-v1", "standard-v2", "standard-v3"], var.platform_id)
    error_message = "platform_id is standard-v1, standard-v2 or standard-v3."
  }
}

variable "machines" {
  description = "Size of each machine: the k3d node runs Gavel, its infrastructure and Traefik; jenkins builds; monitoring runs Prometheus, Alertmanager and Grafana."
  type = map(object({
    cores         = number
    memory        = number
    core_fraction = optional(number, 100)
    disk_size     = number
    disk_type     = optional(string, "network-ssd")
    preemptible   = optional(bool, false)
  }))
  default = {
    k3d        = { cores = 4, memory = 8, disk_size = 64 }
    jenkins    = { cores = 2, memory = 4, disk_size = 64 }
    monitoring = { cores = 2, memory = 4, disk_size = 40 }
  }

  validation {
    condition     = toset(keys(var.machines)) == toset(["k3d", "jenkins", "monitoring"])
    error_message = "machines has exactly the keys k3d, jenkins and monitoring."
  }

  validation {
    condition = alltrue([for m in values(var.machines) :
      m.cores >= 2 && m.cores % 2 == 0 && m.memory >= 2 && m.memory <= 8 * m.cores &&
      contains([20, 50, 100], m.core_fraction) && m.disk_size >= 20 && m.disk_size <= 1024 &&
    contains(["network-hdd", "network-ssd", "network-ssd-nonreplicated"], m.disk_type)])
    error_message = "Each machine needs an even number of cores (2 or more), 2-8 GB of memory per core, core_fraction 20, 50 or 100, a 20-1024 GB disk of a known type."
  }
}

variable "photos_bucket" {
  description = "The Object Storage bucket for lot photos (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.photos_bucket))
    error_message = "photos_bucket is 3-63 lower-case letters, digits, dots or dashes."
  }
}

variable "deleted_photo_retention_days" {
  description = "Days a deleted or replaced photo stays recoverable (a noncurrent version) before it expires."
  type        = number
  default     = 30

  validation {
    condition     = var.deleted_photo_retention_days >= 1 && var.deleted_photo_retention_days <= 365
    error_message = "deleted_photo_retention_days is 1-365."
  }
}

variable "kms_rotation_period" {
  description = "How often the photos' encryption key rotates."
  type        = string
  default     = "8760h"

  validation {
    condition     = can(regex("^[0-9]+h$", var.kms_rotation_period)) && tonumber(trimsuffix(var.kms_rotation_period, "h")) >= 24
    error_message = "kms_rotation_period is a number of hours, at least 24h (e.g. 8760h for a year)."
  }
}

variable "managed_postgresql" {
  description = "Run PostgreSQL as Yandex Managed PostgreSQL instead of inside the k3d cluster."
  type        = bool
  default     = false
}

variable "managed_redis" {
  description = "Run Redis as Yandex Managed Redis instead of inside the k3d cluster."
  type        = bool
  default     = false
}

variable "database_password" {
  description = "Password of the managed PostgreSQL user gavel (write-only: never stored in the state). Pass it as TF_VAR_database_password."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = var.database_password == null || length(coalesce(var.database_password, "x")) >= 16
    error_message = "database_password has at least 16 characters."
  }
}

variable "database_password_version" {
  description = "Raise it to push a changed database_password (write-only values are not compared)."
  type        = number
  default     = 1
}

variable "redis_password" {
  description = "Password of the managed Redis (write-only). Pass it as TF_VAR_redis_password."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = var.redis_password == null || length(coalesce(var.redis_password, "x")) >= 16
    error_message = "redis_password has at least 16 characters."
  }
}

variable "redis_password_version" {
  description = "Raise it to push a changed redis_password."
  type        = number
  default     = 1
}

variable "database_deletion_protection" {
  description = "Refuse to delete the managed databases (turn off deliberately before destroying)."
  type        = bool
  default     = true
}
