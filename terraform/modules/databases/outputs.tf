output "postgresql_host" {
  description = "The PostgreSQL cluster's read-write address (through its pooler, port 6432), or null."
  value       = var.postgresql ? "c-${yandex_mdb_postgresql_cluster.this[0].id}.rw.mdb.yandexcloud.net" : null
}

output "redis_host" {
  description = "The Redis cluster's master address (TLS, port 6380), or null."
  value       = var.redis ? "c-${yandex_mdb_redis_cluster.this[0].id}.rw.mdb.yandexcloud.net" : null
}
