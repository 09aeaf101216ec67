//! TLS between edges and the hub, with the hub's certificate pinned.
//!
//! `cairn hub init` makes a self-signed certificate (`tls.crt`, `tls.key`)
//! and prints its SHA-256 fingerprint; `cairn hub serve --tls` serves HTTPS
//! with it. An edge trusts exactly the certificate whose fingerprint it was
//! given (`--hub-cert-sha256`, remembered at enrollment), not a CA: field
//! sites rarely have a PKI, and a pin cannot be subverted by a mis-issued
//! certificate. An `https://` hub without a pin is refused, never trusted
//! blindly. rustls uses the `ring` provider (see reference/dependencies.md).

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The certificate file in a hub's data directory.
pub fn cert_path(dir: &Path) -> PathBuf {
    dir.join("tls.crt")
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("tls.key")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate's DER encoding, the form pins take.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

/// Makes the hub's self-signed certificate for `names` (DNS names or IP
/// addresses) unless one exists; returns its fingerprint.
pub fn ensure_certificate(dir: &Path, names: &[String]) -> anyhow::Result<[u8; 32]> {
    if !cert_path(dir).exists() {
        let certified = rcgen::generate_simple_self_signed(names.to_vec())
            .context("cannot make the hub's TLS certificate")?;
        cairn_edge::write_private_file(
            &key_path(dir),
            certified.signing_key.serialize_pem().as_bytes(),
        )?;
        std::fs::write(cert_path(dir), certified.cert.pem())
            .with_context(|| format!("cannot write {}", cert_path(dir).display()))?;
    }
    certificate_fingerprint(dir)
}

/// The fingerprint of the hub's certificate in `dir`.
pub fn certificate_fingerprint(dir: &Path) -> anyhow::Result<[u8; 32]> {
    let cert = CertificateDer::from_pem_file(cert_path(dir))
        .with_context(|| format!("cannot read {}", cert_path(dir).display()))?;
    Ok(fingerprint(&cert))
}

/// The hub's server configuration, from `tls.crt` and `tls.key` in `dir`.
pub fn server_config(dir: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert_path(dir))
        .with_context(|| format!("cannot read {}", cert_path(dir).display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not PEM", cert_path(dir).display()))?;
    let key = PrivateKeyDer::from_pem_file(key_path(dir))
        .with_context(|| format!("cannot read {}", key_path(dir).display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the hub's certificate and key do not match")?;
    Ok(Arc::new(config))
}

/// Trusts exactly one certificate, by fingerprint; signatures are still
/// checked, so only the holder of its key can complete the handshake.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the hub's certificate (sha256 {}) is not the pinned one (sha256 {})",
                hex::encode(fingerprint(end_entity)),
                hex::encode(self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Parses a pin: 64 hex digits, colons allowed (`openssl x509 -fingerprint`).
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    hex::decode(&digits)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| "a SHA-256 fingerprint is 64 hex digits (colons allowed)".to_string())
}

/// Makes `ring` the process's rustls provider (once; later calls do
/// nothing). reqwest builds a TLS configuration for every client, plain
/// HTTP included, and panics without a provider.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How long a client keeps an idle connection for reuse: well inside the
/// servers' read timeout, so it never sends on one the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// `reqwest::Client::builder()` with the rustls provider installed: every
/// client of this crate and its tests starts here.
pub fn builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder().pool_idle_timeout(POOL_IDLE_TIMEOUT)
}

/// An HTTP client for `url`: over `https://` it trusts only the certificate
/// `pin` names, and refuses to be built without one.
pub fn client(
    url: &str,
    pin: Option<[u8; 32]>,
    timeout: Option<Duration>,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = builder();
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    if url.starts_with("https://") {
        let pin = pin.context(
            "hub_cert_sha256: required for an https:// hub (rule: pinned); \
             `cairn hub status` on the hub prints it",
        )?;
        let provider = provider();
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(config);
    }
    builder.build().context("cannot build the HTTP client")
}
