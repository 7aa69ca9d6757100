output "network_id" {
  description = "The VPC network."
  value       = yandex_vpc_network.this.id
}

output "subnet_ids" {
  description = "One subnet per zone, in the order of zones."
  value       = yandex_vpc_subnet.this[*].id
}

output "security_group_ids" {
  description = "The security group of each role: k3d, jenkins, monitoring, databases."
  value = {
    k3d        = yandex_vpc_security_group.k3d.id
    jenkins    = yandex_vpc_security_group.jenkins.id
    monitoring = yandex_vpc_security_group.monitoring.id
    databases  = yandex_vpc_security_group.databases.id
  }
}
