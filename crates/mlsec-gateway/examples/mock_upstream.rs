//! The tests' model server as a program, for the interop tests and the benchmark:
//! `cargo run -p mlsec-gateway --example mock_upstream -- 8001` (prints its address).

#[allow(dead_code)] // the tests use the rest
#[path = "../tests/it/upstream.rs"]
mod upstream;

#[tokio::main]
async fn main() {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let up = upstream::start(port).await;
    println!("{}", up.url());
    std::future::pending::<()>().await;
}
