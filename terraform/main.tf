# Gavel on Yandex Cloud: the network, the photos bucket, optional managed databases, three
# machines (the k3d node behind a network load balancer, Jenkins, monitoring) and the Ansible
# inventory that configures them (docs/infrastructure.md).

locals {
  # The k3d cluster's API port on the k3d node (deploy/k3d/cluster.yaml's kubeAPI.hostPort).
  k3d_api_port = 6445
  # The in-cluster Prometheus' node port, federated by the monitoring machine (ansible/).
  federation_port = 30090

  cloud_init = templatefile("${path.module}/cloud-init.tftpl", {
    user           = var.ssh_user
    ssh_public_key = trimspace(var.ssh_public_key)
  })
}

module "network" {
  source = "./modules/network"

  name            = var.name
  zones           = var.zones
  subnet_cidrs    = var.subnet_cidrs
  admin_cidrs     = var.admin_cidrs
  k3d_api_port    = local.k3d_api_port
  federation_port = local.federation_port
}

module "storage" {
  source = "./modules/storage"

  name                         = var.name
  folder_id                    = var.folder_id
  bucket                       = var.photos_bucket
  deleted_photo_retention_days = var.deleted_photo_retention_days
  kms_rotation_period          = var.kms_rotation_period
}

module "databases" {
  source = "./modules/databases"

  name                      = var.name
  network_id                = module.network.network_id
  zones                     = var.zones
  subnet_ids                = module.network.subnet_ids
  security_group_id         = module.network.security_group_ids["databases"]
  postgresql                = var.managed_postgresql
  redis                     = var.managed_redis
  database_password         = var.database_password
  database_password_version = var.database_password_version
  redis_password            = var.redis_password
  redis_password_version    = var.redis_password_version
  deletion_protection       = var.database_deletion_protection
}
