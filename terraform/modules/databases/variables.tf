variable "name" {
  description = "Prefix of every resource's name."
  type        = string
}

variable "network_id" {
  description = "The VPC network."
  type        = string
}

variable "zones" {
  description = "One host per zone."
  type        = list(string)
}

variable "subnet_ids" {
  description = "The subnets, in the order of zones."
  type        = list(string)
}

variable "security_group_id" {
  description = "The databases' security group."
  type        = string
}

variable "postgresql" {
  description = "Create the managed PostgreSQL cluster."
  type        = bool
}

variable "redis" {
  description = "Create the managed Redis cluster."
  type        = bool
}

variable "database_password" {
  description = "The PostgreSQL user's password (write-only)."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "database_password_version" {
  description = "Version of database_password."
  type        = number
}

variable "redis_password" {
  description = "Redis' password (write-only)."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "redis_password_version" {
  description = "Version of redis_password."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse to delete the clusters."
  type        = bool
}
