//! A private Ethereum dev chain per test: the `anvil` binary the stack installs (npm
//! `@foundry-rs/anvil-linux-amd64`), on an ephemeral port, with automatic mining and
//! impersonation, so tests fund any address and send from it without managing keys.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

#[derive(Debug)]
pub struct DevChain {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

fn anvil_path() -> String {
    std::env::var("GAVEL_ANVIL").unwrap_or_else(|_| {
        format!(
            "{}/../../.ci/node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

impl DevChain {
    /// Starts a fresh chain (id 31337) and waits until it listens.
    pub fn start() -> Self {
        let path = anvil_path();
        let mut child = Command::new(&path)
            .args(["--port", "0", "--auto-impersonate", "--chain-id", "31337"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start anvil at {path}: {error} (run `bash .ci/stack`)")
            });
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let address = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("Listening on ") {
                        break address.trim().to_owned();
                    }
                }
                _ => panic!("anvil exited before listening"),
            }
        };
        // Keep draining stdout so anvil never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }

    /// A raw JSON-RPC call; panics on an error answer.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let answer = self.try_rpc(method, params).await;
        answer.unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    /// A raw JSON-RPC call, returning the node's error message on failure.
    pub async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|error| error.to_string())?
            .json()
            .await
            .map_err(|error| error.to_string())?;
        match response.get("error") {
            Some(error) => Err(error.to_string()),
            None => Ok(response["result"].clone()),
        }
    }

    /// Sets `address`'s balance to `wei` (decimal string).
    pub async fn set_balance(&self, address: &str, wei: &str) {
        let hex = format!("0x{}", to_hex(wei));
        self.rpc("anvil_setBalance", json!([address, hex])).await;
    }

    /// Sends `wei` from `from` to `to` (impersonated, so no key needed); returns the tx hash.
    pub async fn send(&self, from: &str, to: &str, wei: &str, data: Option<&str>) -> String {
        let mut tx = json!({"from": from, "to": to, "value": format!("0x{}", to_hex(wei)), "gas": "0x100000"});
        if let Some(data) = data {
            tx["data"] = json!(data);
        }
        let hash = self
            .rpc("eth_sendTransaction", json!([tx]))
            .await
            .as_str()
            .expect("a tx hash")
            .to_owned();
        self.receipt(&hash).await;
        hash
    }

    /// Waits until `hash` is mined (anvil mines on its own thread) and returns its receipt.
    pub async fn receipt(&self, hash: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !receipt.is_null() {
                return receipt;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "transaction {hash} was not mined within 10s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Deploys `init_code` from `from`; returns the new contract's address.
    pub async fn deploy(&self, from: &str, init_code: &str) -> String {
        let tx = json!({"from": from, "data": init_code, "gas": "0x100000"});
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        let receipt = self.receipt(hash.as_str().expect("a tx hash")).await;
        receipt["contractAddress"]
            .as_str()
            .expect("a contract address")
            .to_owned()
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) {
        self.rpc("anvil_mine", json!([format!("0x{blocks:x}")]))
            .await;
    }
}

/// Decimal string → lowercase hex, for the node's quantities.
fn to_hex(decimal: &str) -> String {
    let mut digits: Vec<u32> = decimal.bytes().map(|byte| u32::from(byte - b'0')).collect();
    let mut hex = Vec::new();
    while digits.iter().any(|digit| *digit != 0) {
        let mut remainder = 0;
        for digit in &mut digits {
            let value = remainder * 10 + *digit;
            *digit = value / 16;
            remainder = value % 16;
        }
        hex.push(char::from_digit(remainder, 16).expect("a hex digit"));
    }
    if hex.is_empty() {
        return "0".to_owned();
    }
    hex.iter().rev().collect()
}

impl Drop for DevChain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_amounts_convert_to_hex_quantities() {
        assert_eq!(super::to_hex("0"), "0");
        assert_eq!(super::to_hex("255"), "ff");
        assert_eq!(super::to_hex("1000000000000000000"), "de0b6b3a7640000");
    }
}
