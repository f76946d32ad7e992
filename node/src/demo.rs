pub async fn run(_dir: &std::path::Path, _once: bool) -> anyhow::Result<()> { anyhow::bail!("todo") }
