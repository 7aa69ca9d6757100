# One service account per machine role, each with only what its machine does: the k3d node pulls
# Gavel's images from Container Registry, Jenkins pushes them; monitoring needs no cloud access.

resource "yandex_iam_service_account" "machine" {
  for_each = toset(["k3d", "jenkins", "monitoring"])

  name        = "${var.name}-${each.key}"
  description = "The ${each.key} machine"
  folder_id   = var.folder_id
}

resource "yandex_resourcemanager_folder_iam_member" "k3d_pull" {
  folder_id = var.folder_id
  role      = "container-registry.images.puller"
  member    = "serviceAccount:${yandex_iam_service_account.machine["k3d"].id}"
}

resource "yandex_resourcemanager_folder_iam_member" "jenkins_push" {
  folder_id = var.folder_id
  role      = "container-registry.images.pusher"
  member    = "serviceAccount:${yandex_iam_service_account.machine["jenkins"].id}"
}
