# The private network: one subnet per zone, egress through a NAT gateway, and one security group
# per role. Only the k3d node takes HTTP/HTTPS from anywhere (through the balancer, which keeps
# client addresses); operators reach SSH and the UIs from admin_cidrs; the rest is internal.

resource "yandex_vpc_network" "this" {
  name        = var.name
  description = "Gavel"
}

resource "yandex_vpc_gateway" "nat" {
  name = "${var.name}-nat"
  shared_egress_gateway {}
}

resource "yandex_vpc_route_table" "nat" {
  name       = "${var.name}-nat"
  network_id = yandex_vpc_network.this.id

  static_route {
    destination_prefix = "0.0.0.0/0"
    gateway_id         = yandex_vpc_gateway.nat.id
  }
}

resource "yandex_vpc_subnet" "this" {
  count = length(var.zones)

  name           = "${var.name}-${var.zones[count.index]}"
  zone           = var.zones[count.index]
  network_id     = yandex_vpc_network.this.id
  v4_cidr_blocks = [var.subnet_cidrs[count.index]]
  route_table_id = yandex_vpc_route_table.nat.id
}

resource "yandex_vpc_security_group" "k3d" {
  name        = "${var.name}-k3d"
  description = "The k3d node behind the network load balancer"
  network_id  = yandex_vpc_network.this.id

  ingress {
    description    = "HTTP from clients, through the balancer"
    protocol       = "TCP"
    port           = 80
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description    = "HTTPS from clients, through the balancer"
    protocol       = "TCP"
    port           = 443
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description       = "The balancer's health checks of the ingress"
    protocol          = "TCP"
    port              = 80
    predefined_target = "loadbalancer_healthchecks"
  }
  ingress {
    description    = "SSH from operators"
    protocol       = "TCP"
    port           = 22
    v4_cidr_blocks = var.admin_cidrs
  }
  ingress {
    description       = "SSH through Jenkins, Ansible's jump host"
    protocol          = "TCP"
    port              = 22
    security_group_id = yandex_vpc_security_group.jenkins.id
  }
  ingress {
    description       = "The k3d API from Jenkins"
    protocol          = "TCP"
    port              = var.k3d_api_port
    security_group_id = yandex_vpc_security_group.jenkins.id
  }
  ingress {
    description       = "node_exporter, from monitoring"
    protocol          = "TCP"
    port              = 9100
    security_group_id = yandex_vpc_security_group.monitoring.id
  }
  ingress {
    description       = "The in-cluster Prometheus, federated by monitoring"
    protocol          = "TCP"
    port              = var.federation_port
    security_group_id = yandex_vpc_security_group.monitoring.id
  }
  egress {
    description    = "Images, packages, the chain's RPC, Telegram, Object Storage"
    protocol       = "ANY"
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "yandex_vpc_security_group" "jenkins" {
  name        = "${var.name}-jenkins"
  description = "Jenkins, also the jump host to the private k3d node"
  network_id  = yandex_vpc_network.this.id

  ingress {
    description    = "SSH from operators"
    protocol       = "TCP"
    port           = 22
    v4_cidr_blocks = var.admin_cidrs
  }
  ingress {
    description    = "Jenkins' UI from operators"
    protocol       = "TCP"
    port           = 8080
    v4_cidr_blocks = var.admin_cidrs
  }
  ingress {
    description       = "node_exporter, from monitoring"
    protocol          = "TCP"
    port              = 9100
    security_group_id = yandex_vpc_security_group.monitoring.id
  }
  egress {
    description    = "Packages, plugins, the registry, the repository, the k3d API"
    protocol       = "ANY"
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "yandex_vpc_security_group" "monitoring" {
  name        = "${var.name}-monitoring"
  description = "Prometheus, Alertmanager and Grafana"
  network_id  = yandex_vpc_network.this.id

  ingress {
    description    = "SSH from operators"
    protocol       = "TCP"
    port           = 22
    v4_cidr_blocks = var.admin_cidrs
  }
  ingress {
    description    = "Grafana from operators"
    protocol       = "TCP"
    port           = 3000
    v4_cidr_blocks = var.admin_cidrs
  }
  ingress {
    description    = "Prometheus and Alertmanager UIs from operators"
    protocol       = "TCP"
    from_port      = 9090
    to_port        = 9093
    v4_cidr_blocks = var.admin_cidrs
  }
  ingress {
    description       = "Its own node_exporter"
    protocol          = "ANY"
    predefined_target = "self_security_group"
  }
  egress {
    description    = "Scrapes, packages, alert notifications"
    protocol       = "ANY"
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "yandex_vpc_security_group" "databases" {
  name        = "${var.name}-databases"
  description = "Managed PostgreSQL and Redis, reachable from the k3d node only"
  network_id  = yandex_vpc_network.this.id

  ingress {
    description       = "PostgreSQL (through the pooler) from the k3d node"
    protocol          = "TCP"
    port              = 6432
    security_group_id = yandex_vpc_security_group.k3d.id
  }
  ingress {
    description       = "Redis (plain and TLS) from the k3d node"
    protocol          = "TCP"
    from_port         = 6379
    to_port           = 6380
    security_group_id = yandex_vpc_security_group.k3d.id
  }
}
