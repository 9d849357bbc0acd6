use super::*;
use proptest::prelude::*;

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn code(method: Method, path: &str, query: &str) -> (u16, &'static str) {
    let e = route(method, path, query).expect_err(path);
    (e.status(), e.code().as_str())
}

#[test]
fn base_endpoint() {
    assert_eq!(route(Method::Get, "/v2/", ""), Ok(Route::Base));
    assert_eq!(route(Method::Head, "/v2", ""), Ok(Route::Base));
    assert_eq!(code(Method::Post, "/v2/", ""), (405, "UNSUPPORTED"));
}

#[test]
fn manifests_by_tag_and_digest_in_any_namespace() {
    let r = route(Method::Head, "/v2/a/b/c/manifests/v1.0", "ns=ghcr.io").unwrap();
    let Route::Manifest {
        name,
        reference,
        head,
        registry,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(name.as_str(), "a/b/c");
    assert_eq!(reference, Reference::Tag(Tag::parse("v1.0").unwrap()));
    assert!(head);
    assert_eq!(registry.unwrap().as_str(), "ghcr.io");

    let path = format!("/v2/library/alpine/manifests/{D}");
    let r = route(Method::Get, &path, "").unwrap();
    assert!(matches!(
        r,
        Route::Manifest {
            reference: Reference::Digest(_),
            head: false,
            registry: None,
            ..
        }
    ));
}

#[test]
fn names_may_contain_endpoint_words() {
    let r = route(Method::Get, "/v2/blobs/uploads/manifests/latest", "").unwrap();
    let Route::Manifest { name, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(name.as_str(), "blobs/uploads");
    let path = format!("/v2/tags/manifests/blobs/{D}");
    let r = route(Method::Get, &path, "").unwrap();
    let Route::Blob { name, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(name.as_str(), "tags/manifests");
}

#[test]
fn blobs_and_tags() {
    let path = format!("/v2/x/blobs/{D}");
    assert!(matches!(
        route(Method::Head, &path, ""),
        Ok(Route::Blob { head: true, .. })
    ));
    let r = route(Method::Get, "/v2/x/tags/list", "n=10&last=v2").unwrap();
    let Route::TagsList { n, last, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(n, Some(10));
    assert_eq!(last.unwrap().as_str(), "v2");
    assert_eq!(
        code(Method::Get, "/v2/x/tags/list", "n=-1"),
        (400, "PAGINATION_NUMBER_INVALID")
    );
    assert_eq!(
        code(Method::Get, "/v2/x/tags/list", "n=99999999999"),
        (400, "PAGINATION_NUMBER_INVALID")
    );
    assert_eq!(
        code(Method::Get, "/v2/x/tags/list", "last=.."),
        (400, "TAG_INVALID")
    );
}

#[test]
fn ns_parameter_is_decoded_and_validated() {
    let path = format!("/v2/x/blobs/{D}");
    let r = route(Method::Get, &path, "foo=bar&ns=localhost%3A5000").unwrap();
    let Route::Blob { registry, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(registry.unwrap().as_str(), "localhost:5000");
    let r = route(Method::Get, &path, "ns=index.docker.io").unwrap();
    let Route::Blob { registry, .. } = r else {
        panic!("{r:?}")
    };
    assert!(registry.unwrap().is_docker_hub());
    for bad in ["ns=", "ns=%zz", "ns=a%2Fb", "ns=..", "ns=a%00b"] {
        assert_eq!(
            code(Method::Get, &path, bad),
            (400, "NAME_INVALID"),
            "{bad}"
        );
    }
}

#[test]
fn write_endpoints_are_recognised_and_refused() {
    let blob = format!("/v2/x/blobs/{D}");
    let referrers = format!("/v2/x/referrers/{D}");
    let cases: &[(Method, &str, Endpoint)] = &[
        (
            Method::Put,
            "/v2/x/manifests/latest",
            Endpoint::ManifestPush,
        ),
        (
            Method::Delete,
            "/v2/x/manifests/latest",
            Endpoint::ManifestDelete,
        ),
        (Method::Delete, &blob, Endpoint::BlobDelete),
        (Method::Post, "/v2/x/blobs/uploads/", Endpoint::UploadStart),
        (Method::Post, "/v2/x/blobs/uploads", Endpoint::UploadStart),
        (
            Method::Patch,
            "/v2/x/blobs/uploads/3f2a-uuid",
            Endpoint::UploadSession,
        ),
        (
            Method::Put,
            "/v2/x/blobs/uploads/3f2a-uuid",
            Endpoint::UploadSession,
        ),
        (
            Method::Get,
            "/v2/x/blobs/uploads/3f2a-uuid",
            Endpoint::UploadSession,
        ),
        (
            Method::Delete,
            "/v2/x/blobs/uploads/3f2a-uuid",
            Endpoint::UploadSession,
        ),
        (Method::Get, &referrers, Endpoint::Referrers),
        (Method::Get, "/v2/_catalog", Endpoint::Catalog),
    ];
    for (method, path, endpoint) in cases {
        assert_eq!(
            route(*method, path, ""),
            Ok(Route::Unsupported(*endpoint)),
            "{method:?} {path}"
        );
    }
    assert_eq!(Endpoint::ManifestPush.error().status(), 405);
    assert_eq!(Endpoint::Referrers.error().status(), 404);
    assert_eq!(
        code(Method::Patch, "/v2/x/manifests/latest", ""),
        (405, "UNSUPPORTED")
    );
    assert_eq!(code(Method::Other, &blob, ""), (405, "UNSUPPORTED"));
}

#[test]
fn validation_comes_before_the_method() {
    let bad_names = [
        "/v2/../etc/manifests/latest",
        "/v2/%2e%2e/manifests/latest",
        "/v2/%2e%2e%2fetc/manifests/latest",
        "/v2//etc/manifests/latest",
        "/v2/a//b/manifests/latest",
        "/v2/Alpine/manifests/latest",
        "/v2/a\0b/manifests/latest",
        "/v2/-a/manifests/latest",
    ];
    for method in [
        Method::Get,
        Method::Head,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Other,
    ] {
        for path in bad_names {
            assert_eq!(
                code(method, path, ""),
                (400, "NAME_INVALID"),
                "{method:?} {path}"
            );
        }
        assert_eq!(
            code(method, "/v2/x/manifests/sha256:abc", ""),
            (400, "DIGEST_INVALID")
        );
        // Neither a tag nor a digest: no such manifest, as distribution answers.
        for reference in [".bad", ".INVALID_MANIFEST_NAME", "..%2f..%2fetc"] {
            assert_eq!(
                code(method, &format!("/v2/x/manifests/{reference}"), ""),
                (404, "MANIFEST_UNKNOWN"),
                "{method:?} {reference}"
            );
        }
        assert_eq!(
            code(method, "/v2/x/blobs/sha256:zz", ""),
            (400, "DIGEST_INVALID")
        );
        assert_eq!(
            code(method, "/v2/x/blobs/latest", ""),
            (400, "DIGEST_INVALID")
        );
        assert_eq!(
            code(method, "/v2/../blobs/uploads/", ""),
            (400, "NAME_INVALID")
        );
    }
    let long = format!("/v2/{}/manifests/latest", "a".repeat(256));
    assert_eq!(code(Method::Get, &long, ""), (400, "NAME_INVALID"));
}

#[test]
fn unknown_paths_are_404() {
    for path in [
        "/",
        "/v1/",
        "/v2/x",
        "/v2/x/other/y",
        "/v2/x/tags/all",
        "/v2/manifests/latest",
        "/etc/passwd",
    ] {
        assert_eq!(code(Method::Get, path, ""), (404, "UNSUPPORTED"), "{path}");
    }
}

#[test]
fn split_target_separates_query() {
    assert_eq!(split_target("/v2/x?ns=a&b=c"), ("/v2/x", "ns=a&b=c"));
    assert_eq!(split_target("/v2/"), ("/v2/", ""));
}

proptest! {
    #[test]
    fn never_panics(path in "/v2/\\PC{0,120}", query in "\\PC{0,40}", m in 0usize..7) {
        let methods = [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete, Method::Other];
        match route(methods[m], &path, &query) {
            Ok(Route::Manifest { name, .. } | Route::Blob { name, .. } | Route::TagsList { name, .. }) => {
                prop_assert!(Name::parse(name.as_str()).is_ok());
                prop_assert!(!name.as_str().contains(".."));
            }
            Ok(_) => {}
            Err(e) => prop_assert!([400, 404, 405].contains(&e.status())),
        }
    }

    #[test]
    fn valid_requests_round_trip(name in "[a-z0-9]{1,10}(/[a-z0-9]{1,10}){0,3}", tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}") {
        let path = format!("/v2/{name}/manifests/{tag}");
        let r = route(Method::Get, &path, "").unwrap();
        let Route::Manifest { name: n, reference, .. } = r else { panic!() };
        prop_assert_eq!(n.as_str(), name.as_str());
        prop_assert_eq!(reference.to_string(), tag);
    }
}
