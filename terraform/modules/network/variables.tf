variable "name" {
  description = "Prefix of every resource's name."
  type        = string
}

variable "zones" {
  description = "One subnet per zone."
  type        = list(string)
}

variable "subnet_cidrs" {
  description = "The subnets' IPv4 ranges, in the order of zones."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "Operators' ranges: SSH and the operator UIs."
  type        = list(string)
}

variable "k3d_api_port" {
  description = "The k3d cluster's API port on the k3d node (Jenkins deploys through it)."
  type        = number
}

variable "federation_port" {
  description = "The node port of the in-cluster Prometheus that the monitoring machine federates from."
  type        = number
}
