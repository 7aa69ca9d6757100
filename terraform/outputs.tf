output "ingress_address" {
  description = "The load balancer's public address: point Gavel's DNS name here."
  value       = one(flatten([for l in yandex_lb_network_load_balancer.ingress.listener : [for a in l.external_address_spec : a.address] if l.name == "http"]))
}

output "jenkins_url" {
  description = "Jenkins, open to admin_cidrs."
  value       = "http://${yandex_compute_instance.machine["jenkins"].network_interface[0].nat_ip_address}:8080"
}

output "grafana_url" {
  description = "Grafana, open to admin_cidrs."
  value       = "http://${yandex_compute_instance.machine["monitoring"].network_interface[0].nat_ip_address}:3000"
}

output "photos_bucket" {
  description = "The photos bucket."
  value       = module.storage.bucket
}

output "photos_access_key" {
  description = "lots' S3 access key id (goes into the Ansible Vault with the secret key)."
  value       = module.storage.access_key
}

output "photos_secret_key" {
  description = "lots' S3 secret key: `terraform output -raw photos_secret_key`, straight into the Ansible Vault."
  value       = module.storage.secret_key
  sensitive   = true
}

output "postgresql_host" {
  description = "Managed PostgreSQL's read-write address, when managed_postgresql is on."
  value       = module.databases.postgresql_host
}

output "redis_host" {
  description = "Managed Redis' master address, when managed_redis is on."
  value       = module.databases.redis_host
}

output "ansible_inventory" {
  description = "The Ansible inventory: `terraform output -raw ansible_inventory > ../ansible/inventory/hosts.yml`."
  value = templatefile("${path.module}/inventory.tftpl", {
    ssh_user        = var.ssh_user
    k3d_address     = yandex_compute_instance.machine["k3d"].network_interface[0].ip_address
    jenkins_address = yandex_compute_instance.machine["jenkins"].network_interface[0].nat_ip_address
    jenkins_private = yandex_compute_instance.machine["jenkins"].network_interface[0].ip_address
    monitoring      = yandex_compute_instance.machine["monitoring"].network_interface[0].nat_ip_address
    monitoring_ip   = yandex_compute_instance.machine["monitoring"].network_interface[0].ip_address
    k3d_api_port    = local.k3d_api_port
    federation_port = local.federation_port
    photos_bucket   = module.storage.bucket
    photos_key_id   = module.storage.access_key
    postgresql_host = module.databases.postgresql_host
    redis_host      = module.databases.redis_host
    admin_cidrs     = var.admin_cidrs
    subnet_cidrs    = var.subnet_cidrs
  })
}
