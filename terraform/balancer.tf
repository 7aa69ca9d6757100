# A network (L4) load balancer in front of the k3d node: WebSockets pass through unchanged, and
# client addresses are kept. Health is Traefik's /ping on the web entry point (ansible/roles/k3d
# turns it on), so a node whose ingress is down takes no traffic.

resource "yandex_lb_target_group" "k3d" {
  name      = "${var.name}-k3d"
  region_id = "ru-central1"

  target {
    subnet_id = module.network.subnet_ids[0]
    address   = yandex_compute_instance.machine["k3d"].network_interface[0].ip_address
  }
}

resource "yandex_lb_network_load_balancer" "ingress" {
  name                = "${var.name}-ingress"
  type                = "external"
  region_id           = "ru-central1"
  deletion_protection = true

  listener {
    name        = "http"
    port        = 80
    target_port = 80
    protocol    = "TCP"
    external_address_spec {
      ip_version = "ipv4"
    }
  }

  listener {
    name        = "https"
    port        = 443
    target_port = 443
    protocol    = "TCP"
    external_address_spec {
      ip_version = "ipv4"
    }
  }

  attached_target_group {
    target_group_id = yandex_lb_target_group.k3d.id

    healthcheck {
      name                = "traefik-ping"
      interval            = 2
      timeout             = 1
      healthy_threshold   = 2
      unhealthy_threshold = 2
      http_options {
        port = 80
        path = "/ping"
      }
    }
  }
}
