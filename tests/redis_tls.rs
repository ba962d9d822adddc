//! `rediss://`: a TLS-only listener of our own redis-server, certificates made
//! for the test by `openssl`, blocking and async caches trusting the test CA.
#![cfg(feature = "tls")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aci_cache::{Builder, Strategy};

/// A CA and a server certificate for 127.0.0.1, in a fresh directory.
fn make_certificates() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("aci-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .ok()?;
    let ok = run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=aci-test-ca",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    ok.then_some(dir)
}

fn tls_client(port: u16, ca: &Path) -> redis::Client {
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(ca).expect("CA certificate")),
    };
    redis::Client::build_with_tls(format!("rediss://127.0.0.1:{port}"), certs).expect("TLS client")
}

#[test]
fn caches_work_over_tls() {
    if support::skip_without_own_servers("caches_work_over_tls") {
        return;
    }
    let Some(dir) = make_certificates() else {
        panic!("openssl is needed to make the test certificates (apt-get install openssl)");
    };
    let tls_port = support::another_free_port();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let tls_port_arg = tls_port.to_string();
    let _server = support::RedisServer::start_with(
        &[
            "--tls-port",
            &tls_port_arg,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
        None,
    );

    let a = Builder::new()
        .is_controller(false)
        .client(tls_client(tls_port, Path::new(&ca)))
        .unwrap();
    let b = Builder::new()
        .is_controller(false)
        .client(tls_client(tls_port, Path::new(&ca)))
        .unwrap();
    assert!(
        a.is_subscribed() && b.is_subscribed(),
        "subscribed over TLS"
    );
    a.force_strategy(Some(Strategy::Eager)).unwrap();
    b.force_strategy(Some(Strategy::Eager)).unwrap();
    a.set("k", "v1").unwrap();
    assert_eq!(b.get_string("k").unwrap().as_deref(), Some("v1"));
    a.set("k", "v2").unwrap();
    assert!(support::eventually(Duration::from_millis(200), || b
        .get_string("k")
        .unwrap()
        .as_deref()
        == Some("v2"))
    .is_some());

    // The same through tokio.
    #[cfg(feature = "tokio")]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let transport = aci_cache::transports::RedisAsyncTransport::from_client(tls_client(
                tls_port,
                Path::new(&ca),
            ));
            let c = Builder::new()
                .is_controller(false)
                .into_async()
                .transport(transport)
                .await
                .unwrap();
            assert!(c.is_subscribed());
            assert_eq!(c.get_string("k").await.unwrap().as_deref(), Some("v2"));
            c.stop().await;
        });
    }

    // A client that does not trust the test CA is refused, with a typed error.
    let untrusting = redis::Client::open(format!("rediss://127.0.0.1:{tls_port}")).unwrap();
    let refused = Builder::new()
        .is_controller(false)
        .timeout(Duration::from_millis(300))
        .client(untrusting);
    assert!(matches!(refused, Err(aci_cache::Error::Transport(_))));
    let _ = std::fs::remove_dir_all(&dir);
}
