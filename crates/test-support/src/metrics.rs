//! Reading a running service's Prometheus metrics.

/// The sum of the samples of `name` on the `/metrics` of the admin listener at `admin` whose
/// labels contain each of `labels` (0 when there are none).
pub async fn metric(admin: &str, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
