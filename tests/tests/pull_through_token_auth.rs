//! An upstream that behaves like Docker Hub: distribution behind Bearer token auth (`auth:
//! token:`) with a token server handing out anonymous, repository-scoped pull tokens. The node
//! follows the challenge, fetches one token per repository, reuses it, and the clients pull
//! through it without any credentials of their own.

use std::time::Duration;

use pyrsia_tests::clients::{Podman, assert_succeeded, skopeo_copy};
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::registry::Registry;
use pyrsia_tests::token::TokenServer;

/// The standard images in a registry behind token auth whose token server claims its
/// 300-second tokens expire in `claimed_secs`: pushed without auth, then the same storage
/// brought back behind the tokens.
fn token_upstream(
    work: &std::path::Path,
    claimed_secs: u64,
) -> (Registry, TokenServer, Vec<pyrsia_tests::image::PushedImage>) {
    let registry_dir = work.join("registry");
    let mut open_registry = Registry::start(&registry_dir);
    let images = push_standard_images(work, &open_registry.authority());
    let port = open_registry.port;
    open_registry.stop();
    let tokens = TokenServer::start_claiming(&work.join("tokens"), 300, claimed_secs);
    let registry = Registry::start_with_token_auth(&registry_dir, port, &tokens);
    (registry, tokens, images)
}

#[test]
fn pulls_through_a_token_authenticated_upstream() {
    let work = tempfile::tempdir().unwrap();
    let (registry, tokens, images) = token_upstream(work.path(), 300);

    // The upstream really demands a token.
    let anonymous = get(&format!(
        "{}/v2/library/small/manifests/small",
        registry.url()
    ))
    .unwrap();
    assert_eq!(anonymous.status, 401, "{anonymous:?}");

    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);
    for image in &images[..2] {
        let out = skopeo_copy(
            &node.authority(),
            &image.reference,
            &work.path().join("copy"),
        );
        assert_succeeded(&out, &format!("skopeo {}", image.reference), &node.log());
    }
    let podman = Podman::new(&work.path().join("podman"), &node.authority());
    let out = podman.pull("library/multiarch:multiarch");
    assert_succeeded(&out, "podman library/multiarch", &node.log());

    // One token per repository, reused for every manifest and blob of that repository.
    assert_eq!(tokens.requests(), 3, "tokens fetched: one per repository");
}

#[test]
fn a_token_claiming_an_absurd_lifetime_is_used_safely_and_the_node_keeps_serving() {
    let work = tempfile::tempdir().unwrap();
    // Tokens valid for 300 s that claim to expire in u64::MAX seconds.
    let (registry, _tokens, images) = token_upstream(work.path(), u64::MAX);
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &registry.url(), "--http-workers", "8"],
    );
    let workers = || node.gauge("http_workers");
    wait_until(
        "every HTTP worker started",
        Duration::from_secs(10),
        &|| node.log(),
        || workers() == Some(8),
    );
    for (round, image) in images[..2].iter().enumerate() {
        let out = skopeo_copy(
            &node.authority(),
            &image.reference,
            &work.path().join(format!("copy{round}")),
        );
        assert_succeeded(&out, &format!("skopeo {}", image.reference), &node.log());
    }
    // The node still answers, every worker alive: the health check and a cached manifest.
    let health = get(&format!("{}/healthz", node.url())).unwrap();
    assert_eq!(health.status, 200);
    let cached = get(&format!("{}/v2/library/small/manifests/small", node.url())).unwrap();
    assert_eq!(cached.status, 200, "{cached:?}");
    assert!(
        !node.log().contains("panicked"),
        "the node panicked:\n{}",
        node.log()
    );
    assert_eq!(workers(), Some(8), "the worker count is unchanged");
    assert_eq!(node.metric("handler_panics"), 0);
}
