data "yandex_compute_image" "this" {
  family = var.image_family
}

# The k3d node is private (egress through the NAT gateway, ingress through the balancer);
# Jenkins and monitoring carry the operators' UIs and have public addresses, open to admin_cidrs
# only. Jenkins is also the SSH jump host to the k3d node.
resource "yandex_compute_instance" "machine" {
  for_each = var.machines

  name                      = "${var.name}-${each.key}"
  hostname                  = "${var.name}-${each.key}"
  platform_id               = var.platform_id
  zone                      = var.zones[0]
  service_account_id        = yandex_iam_service_account.machine[each.key].id
  allow_stopping_for_update = true
  labels = {
    app  = var.name
    role = each.key
  }

  resources {
    cores         = each.value.cores
    memory        = each.value.memory
    core_fraction = each.value.core_fraction
  }

  boot_disk {
    initialize_params {
      image_id = data.yandex_compute_image.this.id
      size     = each.value.disk_size
      type     = each.value.disk_type
    }
  }

  network_interface {
    #checkov:skip=CKV_YC_2:Jenkins and monitoring serve operator UIs; their security groups admit admin_cidrs only, and the k3d node stays private
    subnet_id          = module.network.subnet_ids[0]
    nat                = each.key != "k3d"
    security_group_ids = [module.network.security_group_ids[each.key]]
  }

  scheduling_policy {
    preemptible = each.value.preemptible
  }

  metadata = {
    user-data          = local.cloud_init
    serial-port-enable = "0"
  }
}
