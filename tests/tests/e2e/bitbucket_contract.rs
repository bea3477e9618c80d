//! The requests the Bitbucket connector sends, with both credential forms, checked against
//! Bitbucket's own OpenAPI 3 description (`shared/vendor-specs/bitbucket-cloud-2.0.yml`): each must
//! name a documented operation (path template and method, below the `/2.0` server path), fill only
//! declared path parameters, send only declared query parameters (and every required one), use an
//! auth scheme the operation declares, and carry a body valid under the operation's request schema
//! with no property that schema does not declare. Deliberate deviations are named below.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::contract::{self, Exception, Exceptions};
use crate::harness::TestApp;

/// Deliberate deviations from the description, each named with its reason.
const EXCEPTIONS: Exceptions = Exceptions {
    query: QUERY_EXCEPTIONS,
    missing_body_properties: BODY_EXCEPTIONS,
};

/// Query parameters sent where the operation does not declare them.
const QUERY_EXCEPTIONS: &[Exception] = &[
    (
        "GET /repositories/{workspace}",
        "pagelen",
        "Bitbucket documents `pagelen` once for every paginated collection (REST 2.0 intro, \
         Pagination), not per operation; the credential check asks for a page of one",
    ),
    (
        "GET /repositories/{workspace}/{repo_slug}/pullrequests",
        "pagelen",
        "as above: the page size, documented for all paginated collections",
    ),
    (
        "GET /repositories/{workspace}/{repo_slug}/pullrequests",
        "page",
        "never built by the connector: it is in the `next` URL Bitbucket hands out, which is followed as given",
    ),
];

/// Required body properties left out on purpose.
const BODY_EXCEPTIONS: &[Exception] = &[(
    "POST /repositories/{workspace}/{repo_slug}/pullrequests/{pull_request_id}/comments",
    "type",
    "`type` is the discriminator that the `object` base schema requires of every resource \
     Bitbucket returns; Bitbucket sets it itself, and creating a comment takes \
     `{\"content\":{\"raw\":…}}` alone (Bitbucket's docs, vendor-facts.md)",
)];

/// Defects of the stored description (converted from Bitbucket's swagger.json), repaired before
/// use: keywords indented one level too deep, so that they read as property schemas and the
/// schema does not compile. (schema, keyword); a corrected description fails the repair loudly.
const SPEC_REPAIRS: &[(&str, &str)] = &[
    ("/components/schemas/comment_content", "type"),
    ("/components/schemas/comment_inline", "type"),
    ("/components/schemas/comment_inline", "required"),
];

fn repaired(mut spec: Value) -> Value {
    for (pointer, keyword) in SPEC_REPAIRS {
        let schema = spec.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} is gone"));
        let misplaced = schema["properties"]
            .as_object_mut()
            .and_then(|properties| properties.remove(*keyword))
            .filter(|value| !value.is_object())
            .unwrap_or_else(|| panic!("{pointer}: no misplaced {keyword} any more; drop its repair"));
        schema[*keyword] = misplaced;
    }
    spec
}

/// A REST 2.0 stand-in answering every call the tools and the credential check make, for any
/// credentials: what is sent is judged against the description afterwards.
async fn bitbucket() -> MockServer {
    let vendor = MockServer::start().await;
    let base = format!("{}/2.0", vendor.uri());
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"pagelen": 1, "values": []})))
        .mount(&vendor)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"slug": "web-app"})))
        .mount(&vendor)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"pagelen": 50, "values": [{"id": 2}]})))
        .mount(&vendor)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pagelen": 50,
            "values": [{"id": 1}],
            "next": format!("{base}/repositories/acme/web-app/pullrequests?state=OPEN&pagelen=50&page=2"),
        })))
        .mount(&vendor)
        .await;
    Mock::given(method("POST"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests/7/comments"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 1, "type": "pullrequest_comment", "content": {"raw": "LGTM"}})),
        )
        .mount(&vendor)
        .await;
    vendor
}

#[tokio::test]
async fn every_request_matches_the_vendor_openapi_description() {
    let Some(spec) = contract::load_spec("bitbucket-cloud-2.0.yml", contract::yaml).map(repaired) else {
        return;
    };
    let app = TestApp::start().await;
    let vendor = bitbucket().await;
    let base = format!("{}/2.0", vendor.uri());
    let installs = [
        ("acme", json!({"access_token": "bb-access-token"})),
        (
            "beta",
            json!({"email": "bot@example.com", "api_token": "ATATT-api-token"}),
        ),
    ];
    for (tenant, credentials) in installs {
        let key = app.tenant(tenant, json!({})).await;
        let mut config = json!({"workspace": "acme", "api_base_url": base});
        config
            .as_object_mut()
            .unwrap()
            .extend(credentials.as_object().unwrap().clone());
        let installed = app.post("/v1/plugins/bitbucket/install", &key, config).await;
        assert_eq!(installed.status, 201, "{tenant}: {}", installed.text());
        let calls = [
            ("bitbucket_get_repository", json!({"repo_slug": "web-app"})),
            (
                "bitbucket_list_pull_requests",
                // More than one page's worth, so the `next` page is requested (and checked) too.
                json!({"repo_slug": "web-app", "state": "OPEN", "limit": 60}),
            ),
            (
                "bitbucket_create_pr_comment",
                json!({"repo_slug": "web-app", "pull_request_id": 7, "text": "LGTM"}),
            ),
        ];
        for (tool, arguments) in calls {
            let response = app.post(&format!("/v1/tools/{tool}"), &key, arguments).await;
            assert_eq!(response.status, 200, "{tenant} {tool}: {}", response.text());
        }
    }
    let requests = vendor.received_requests().await.expect("recording");
    // Per credential form: the check, the repository, two pages of pull requests, the comment.
    assert_eq!(requests.len(), 10);
    let schemes: BTreeSet<String> = requests
        .iter()
        .flat_map(|r| contract::check_request(&spec, r, &EXCEPTIONS))
        .collect();
    assert_eq!(schemes, BTreeSet::from(["basic".to_owned(), "oauth2".to_owned()]));
}
