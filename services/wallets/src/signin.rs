//! Sign-In with Ethereum (EIP-4361) verification.
//!
//! The message is parsed with the `siwe` crate (the reference implementation of the format); the
//! signature is checked with alloy over the message bytes exactly as the wallet signed them
//! (EIP-191 `personal_sign`), so no re-rendering can change what was signed. Checks that only
//! need the message run here, before the single-use nonce is consumed in Redis by the caller.

use std::time::Duration;

use alloy::primitives::Signature;
use gavel_types::EthAddress;
use time::OffsetDateTime;

use crate::config::SignInConfig;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// 400: the message does not follow EIP-4361.
    #[error("the message is not a valid EIP-4361 message: {0}")]
    MalformedMessage(String),
    /// 400: the signature is not 65 hex-encoded bytes.
    #[error("the signature must be 0x followed by 130 hex digits (65 bytes)")]
    MalformedSignature,
    #[error("sign-in is not accepted for `{domain}`: open Gavel at {allowed}")]
    WrongDomain { domain: String, allowed: String },
    #[error("the message is for URI `{0}`, not this site")]
    WrongUri(String),
    #[error("the message is for chain {actual}, this site uses chain {expected}")]
    WrongChain { expected: u64, actual: u64 },
    #[error("the message has expired")]
    Expired,
    #[error("the message is not valid yet")]
    NotYetValid,
    #[error("the message was issued in the future")]
    IssuedInFuture,
    #[error("the message was issued too long ago")]
    TooOld,
    #[error("the statement must be exactly `{0}`")]
    WrongStatement(String),
    #[error("the nonce is unknown, expired or already used")]
    BadNonce,
    #[error("the signature was not made by {0}")]
    WrongSigner(EthAddress),
}

impl SignInError {
    /// The outcome this refusal counts as in `gavel_sign_ins_total` (bounded).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::MalformedMessage(_) | Self::MalformedSignature => "malformed",
            Self::WrongDomain { .. }
            | Self::WrongUri(_)
            | Self::WrongChain { .. }
            | Self::WrongStatement(_) => "wrong_site",
            Self::Expired | Self::NotYetValid | Self::IssuedInFuture | Self::TooOld => "stale",
            Self::BadNonce => "bad_nonce",
            Self::WrongSigner(_) => "bad_signature",
        }
    }

    /// Malformed input is the client's bug (400); everything else is a refused sign-in (401).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::MalformedMessage(_) | Self::MalformedSignature)
    }

    /// The request field at fault, for the problem body.
    pub fn field(&self) -> &'static str {
        match self {
            Self::MalformedSignature | Self::WrongSigner(_) => "signature",
            _ => "message",
        }
    }
}

/// A message that passed every check except the nonce, which the caller consumes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub address: EthAddress,
    pub nonce: String,
}

/// One address the site is served under: a message must name its domain and a URI on its origin
/// together (a domain of one with the URI of another is refused).
#[derive(Debug, Clone)]
pub struct Site {
    /// The RFC 3986 authority, as the browser shows it: `gavel.example`, `localhost:8080`.
    pub domain: String,
    pub origin: url::Origin,
}

impl Site {
    /// The site at `url`'s origin; its domain is the host with any non-default port.
    pub fn at(url: &url::Url) -> Self {
        let host = url.host_str().unwrap_or_default();
        let domain = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Self {
            domain,
            origin: url.origin(),
        }
    }
}

/// The site's expectations, from config.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The addresses sign-ins are accepted for: the configured `domain` with `uri`, then each of
    /// `origins`.
    pub sites: Vec<Site>,
    pub chain_id: u64,
    pub max_clock_skew: Duration,
    /// A message older than this is refused even if it names no expiry (the nonce TTL).
    pub max_age: Duration,
}

impl Policy {
    pub fn new(config: &SignInConfig, chain_id: u64) -> Self {
        let mut sites = vec![Site {
            domain: config.domain.clone(),
            origin: config.uri.origin(),
        }];
        sites.extend(config.origins.iter().map(Site::at));
        Self {
            sites,
            chain_id,
            max_clock_skew: config.max_clock_skew,
            max_age: config.nonce_ttl,
        }
    }

    /// The accepted origins, for a refusal's words: `http://localhost:8080 or https://gavel.lan`.
    fn allowed(&self) -> String {
        let origins: Vec<String> = self
            .sites
            .iter()
            .map(|site| site.origin.ascii_serialization())
            .collect();
        origins.join(" or ")
    }

    /// Verifies `message` and its `signature` at time `now`. `statement`, when given, must match
    /// the message's statement exactly (wallet linking binds the message to an account that way).
    pub fn verify(
        &self,
        message: &str,
        signature: &str,
        statement: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Verified, SignInError> {
        let parsed: siwe::Message = message
            .parse()
            .map_err(|error: siwe::ParseError| SignInError::MalformedMessage(error.to_string()))?;
        let signature = parse_signature(signature)?;

        let named: Vec<&Site> = self
            .sites
            .iter()
            .filter(|site| site.domain == parsed.domain.as_str())
            .collect();
        if named.is_empty() {
            return Err(SignInError::WrongDomain {
                domain: parsed.domain.to_string(),
                allowed: self.allowed(),
            });
        }
        // The URI must be on the origin of a site with that domain exactly (one host may be
        // served over http and https, two sites with one domain): a string prefix would let
        // `https://gavel.example@evil.test/` or `https://gavel.example.evil.test` through.
        let on_a_named_site = url::Url::parse(parsed.uri.as_str()).is_ok_and(|uri| {
            uri.username().is_empty()
                && uri.password().is_none()
                && named.iter().any(|site| uri.origin() == site.origin)
        });
        if !on_a_named_site {
            return Err(SignInError::WrongUri(parsed.uri.to_string()));
        }
        if parsed.chain_id != self.chain_id {
            return Err(SignInError::WrongChain {
                expected: self.chain_id,
                actual: parsed.chain_id,
            });
        }
        if let Some(expected) = statement
            && parsed.statement.as_deref() != Some(expected)
        {
            return Err(SignInError::WrongStatement(expected.to_owned()));
        }
        self.check_times(&parsed, now)?;

        let claimed = EthAddress::from_alloy(parsed.address.into());
        let recovered = signature
            .recover_address_from_msg(message.as_bytes())
            .map_err(|_| SignInError::WrongSigner(claimed))?;
        if EthAddress::from_alloy(recovered) != claimed {
            return Err(SignInError::WrongSigner(claimed));
        }
        Ok(Verified {
            address: claimed,
            nonce: parsed.nonce,
        })
    }

    fn check_times(&self, message: &siwe::Message, now: OffsetDateTime) -> Result<(), SignInError> {
        let skew = time::Duration::try_from(self.max_clock_skew).unwrap_or(time::Duration::MINUTE);
        let max_age = time::Duration::try_from(self.max_age).unwrap_or(time::Duration::MINUTE);
        let issued_at = *message.issued_at.as_ref();
        if issued_at > now + skew {
            return Err(SignInError::IssuedInFuture);
        }
        if issued_at < now - max_age - skew {
            return Err(SignInError::TooOld);
        }
        if message
            .expiration_time
            .as_ref()
            .is_some_and(|expiration| *expiration.as_ref() <= now)
        {
            return Err(SignInError::Expired);
        }
        if message
            .not_before
            .as_ref()
            .is_some_and(|not_before| *not_before.as_ref() > now)
        {
            return Err(SignInError::NotYetValid);
        }
        Ok(())
    }
}

fn parse_signature(raw: &str) -> Result<Signature, SignInError> {
    let digits = raw.strip_prefix("0x").unwrap_or(raw);
    if digits.len() != 130 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(SignInError::MalformedSignature);
    }
    let bytes = alloy::hex::decode(digits).map_err(|_| SignInError::MalformedSignature)?;
    Signature::from_raw(&bytes).map_err(|_| SignInError::MalformedSignature)
}

/// The statement a wallet signs to be linked to `account`.
pub fn link_statement(account: gavel_types::AccountId) -> String {
    format!("Link this wallet to Gavel account {account}")
}

#[cfg(test)]
mod tests {
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    use super::*;

    fn policy() -> Policy {
        Policy {
            sites: vec![Site::at(&"https://gavel.test".parse().expect("url"))],
            chain_id: 31337,
            max_clock_skew: Duration::from_secs(60),
            max_age: Duration::from_secs(300),
        }
    }

    fn message(address: &str, domain: &str, chain: u64, extra: &str) -> String {
        format!(
            "{domain} wants you to sign in with your Ethereum account:\n{address}\n\nSign in to Gavel\n\nURI: https://gavel.test/login\nVersion: 1\nChain ID: {chain}\nNonce: abcdef1234567890\nIssued At: {}{extra}",
            OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .expect("formats")
        )
    }

    fn sign(signer: &PrivateKeySigner, text: &str) -> String {
        let signature = signer.sign_message_sync(text.as_bytes()).expect("signs");
        format!("0x{}", alloy::hex::encode(signature.as_bytes()))
    }

    #[test]
    fn a_message_signed_by_its_address_verifies() {
        let signer = PrivateKeySigner::random();
        let text = message(&signer.address().to_checksum(None), "gavel.test", 31337, "");
        let verified = policy()
            .verify(
                &text,
                &sign(&signer, &text),
                None,
                OffsetDateTime::now_utc(),
            )
            .expect("valid");
        assert_eq!(verified.address.as_alloy(), signer.address());
        assert_eq!(verified.nonce, "abcdef1234567890");
    }

    #[test]
    fn each_allowed_origin_signs_in_with_its_own_domain_and_uri_only() {
        let mut policy = policy();
        policy
            .sites
            .push(Site::at(&"http://127.0.0.1:8080".parse().expect("url")));
        policy
            .sites
            .push(Site::at(&"https://gavel.lan:443".parse().expect("url")));
        // The same host over plain http too: two sites, one domain.
        policy
            .sites
            .push(Site::at(&"http://gavel.lan".parse().expect("url")));
        let signer = PrivateKeySigner::random();
        let address = signer.address().to_checksum(None);
        let now = OffsetDateTime::now_utc();
        let at = |domain: &str, uri: &str| {
            message(&address, domain, 31337, "")
                .replace("URI: https://gavel.test/login", &format!("URI: {uri}"))
        };
        for (domain, uri) in [
            ("gavel.test", "https://gavel.test/login"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("gavel.lan", "https://gavel.lan/lots/1"),
            ("gavel.lan", "http://gavel.lan/"),
        ] {
            let text = at(domain, uri);
            assert!(
                policy
                    .verify(&text, &sign(&signer, &text), None, now)
                    .is_ok(),
                "{domain} {uri}"
            );
        }
        // A domain of one site with the URI of another is not that site's sign-in.
        let crossed = at("127.0.0.1:8080", "https://gavel.test/");
        assert!(matches!(
            policy.verify(&crossed, &sign(&signer, &crossed), None, now),
            Err(SignInError::WrongUri(_))
        ));
        let elsewhere = at("192.168.1.7:8080", "http://192.168.1.7:8080/");
        let error = policy
            .verify(&elsewhere, &sign(&signer, &elsewhere), None, now)
            .expect_err("not allowed");
        assert_eq!(
            error.to_string(),
            "sign-in is not accepted for `192.168.1.7:8080`: open Gavel at https://gavel.test or http://127.0.0.1:8080 or https://gavel.lan or http://gavel.lan",
        );
    }

    #[test]
    fn each_mismatch_is_refused_for_its_own_reason() {
        let signer = PrivateKeySigner::random();
        let other = PrivateKeySigner::random();
        let address = signer.address().to_checksum(None);
        let now = OffsetDateTime::now_utc();
        let cases = [
            (message(&address, "evil.test", 31337, ""), &signer, "domain"),
            (message(&address, "gavel.test", 1, ""), &signer, "chain"),
            (
                message(
                    &address,
                    "gavel.test",
                    31337,
                    "\nExpiration Time: 2020-01-01T00:00:00Z",
                ),
                &signer,
                "expired",
            ),
            (message(&address, "gavel.test", 31337, ""), &other, "signer"),
        ];
        let with_uri = |uri: &str| {
            message(&address, "gavel.test", 31337, "")
                .replace("URI: https://gavel.test", &format!("URI: {uri}"))
        };
        for uri in [
            "https://gavel.test@evil.test/",
            "https://gavel.test.evil.test/",
            "http://gavel.test/",
            "https://gavel.test:8443/",
        ] {
            let text = with_uri(uri);
            assert!(text.contains(uri));
            let error = policy()
                .verify(&text, &sign(&signer, &text), None, now)
                .expect_err(uri);
            assert!(
                matches!(error, SignInError::WrongUri(_)),
                "{uri}: got {error}"
            );
        }
        let text = with_uri("https://gavel.test/lots/1");
        assert!(
            policy()
                .verify(&text, &sign(&signer, &text), None, now)
                .is_ok(),
            "a path on our origin"
        );
        for (text, key, reason) in cases {
            let error = policy()
                .verify(&text, &sign(key, &text), None, now)
                .expect_err(reason);
            assert!(!error.is_malformed(), "{reason}: {error}");
            let matches = match reason {
                "domain" => matches!(error, SignInError::WrongDomain { .. }),
                "chain" => matches!(error, SignInError::WrongChain { .. }),
                "expired" => matches!(error, SignInError::Expired),
                _ => matches!(error, SignInError::WrongSigner(_)),
            };
            assert!(matches, "{reason}: got {error}");
        }
    }

    #[test]
    fn malformed_input_names_its_field() {
        let signer = PrivateKeySigner::random();
        let text = message(&signer.address().to_checksum(None), "gavel.test", 31337, "");
        let bad_signature = policy()
            .verify(&text, "0x1234", None, OffsetDateTime::now_utc())
            .expect_err("short");
        assert_eq!(
            (bad_signature.is_malformed(), bad_signature.field()),
            (true, "signature")
        );
        let bad_message = policy()
            .verify(
                "hello",
                &sign(&signer, "hello"),
                None,
                OffsetDateTime::now_utc(),
            )
            .expect_err("not siwe");
        assert_eq!(
            (bad_message.is_malformed(), bad_message.field()),
            (true, "message")
        );
    }
}
