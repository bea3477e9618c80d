//! How a tool's failure is reported: a request the host could not build is its own fault, a 500
//! `internal` whose detail tells the caller nothing of the cause; the caller's own mistakes stay 422.

use integrations_core::ToolError;
use integrations_problems::{Problem, ServiceError};

fn problem_of(error: ToolError) -> Problem {
    Problem::from(&ServiceError::from(error))
}

#[test]
fn a_request_the_host_failed_to_build_is_a_500_internal() {
    let problem = problem_of(ToolError::Internal(
        "cannot write the JSON body: key must be a string".into(),
    ));
    assert_eq!(problem.status().as_u16(), 500);
    assert_eq!(problem.slug(), "internal");
    assert!(!problem.detail().contains("JSON body"), "{}", problem.detail());
}

#[test]
fn unusable_arguments_stay_the_callers_422() {
    let problem = problem_of(ToolError::InvalidArguments("content is not valid base64".into()));
    assert_eq!(problem.status().as_u16(), 422);
    assert_eq!(problem.slug(), "invalid-arguments");
}
