# Optional managed PostgreSQL and Redis, one host per zone, private, reachable only from the k3d
# node's security group. Passwords are write-only arguments: Terraform sends them and never
# stores them. The databases of the four services that own data live on one cluster, owned by
# the gavel user (each service runs its own migrations).

locals {
  databases = toset(["gavel_lots", "gavel_bids", "gavel_wallets", "gavel_notifier"])
}

resource "yandex_mdb_postgresql_cluster" "this" {
  count = var.postgresql ? 1 : 0

  name                = "${var.name}-postgresql"
  environment         = "PRODUCTION"
  network_id          = var.network_id
  security_group_ids  = [var.security_group_id]
  deletion_protection = var.deletion_protection

  config {
    version = "16"
    resources {
      resource_preset_id = "s2.micro"
      disk_type_id       = "network-ssd"
      disk_size          = 20
    }
    pooler_config {
      pooling_mode = "TRANSACTION"
    }
  }

  dynamic "host" {
    for_each = var.zones
    content {
      zone             = host.value
      subnet_id        = var.subnet_ids[host.key]
      assign_public_ip = false
    }
  }

  maintenance_window {
    type = "WEEKLY"
    day  = "SUN"
    hour = 3
  }

  lifecycle {
    precondition {
      condition     = var.database_password != null
      error_message = "managed_postgresql needs database_password (TF_VAR_database_password)."
    }
  }
}

resource "yandex_mdb_postgresql_user" "gavel" {
  count = var.postgresql ? 1 : 0

  cluster_id          = yandex_mdb_postgresql_cluster.this[0].id
  name                = "gavel"
  password_wo         = var.database_password
  password_wo_version = var.database_password_version
  conn_limit          = 200
}

resource "yandex_mdb_postgresql_database" "this" {
  for_each = var.postgresql ? local.databases : toset([])

  cluster_id = yandex_mdb_postgresql_cluster.this[0].id
  name       = each.key
  owner      = yandex_mdb_postgresql_user.gavel[0].name
}

resource "yandex_mdb_redis_cluster" "this" {
  count = var.redis ? 1 : 0

  name                = "${var.name}-redis"
  environment         = "PRODUCTION"
  network_id          = var.network_id
  security_group_ids  = [var.security_group_id]
  deletion_protection = var.deletion_protection
  tls_enabled         = true
  # Redis holds short-lived shared state only (DESIGN.md): nothing to persist.
  persistence_mode = "OFF"

  config {
    version             = "7.2-valkey"
    password_wo         = var.redis_password
    password_wo_version = var.redis_password_version
    maxmemory_policy    = "VOLATILE_LRU"
  }

  resources {
    resource_preset_id = "hm1.nano"
    disk_size          = 16
  }

  dynamic "host" {
    for_each = var.zones
    content {
      zone      = host.value
      subnet_id = var.subnet_ids[host.key]
    }
  }

  maintenance_window {
    type = "WEEKLY"
    day  = "SUN"
    hour = 4
  }

  lifecycle {
    precondition {
      condition     = var.redis_password != null
      error_message = "managed_redis needs redis_password (TF_VAR_redis_password)."
    }
  }
}
