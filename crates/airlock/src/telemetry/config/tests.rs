use super::*;

fn export_with(
    file: &TelemetryConfig,
    vars: &[(&str, &str)],
) -> Result<Option<Export>, InvalidKey> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    file.export(&|name| {
        vars.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })
}

fn with_endpoint(url: &str) -> TelemetryConfig {
    TelemetryConfig {
        otlp_endpoint: Some(url.to_owned()),
        ..TelemetryConfig::default()
    }
}

#[test]
fn no_endpoint_no_traces() {
    assert_eq!(export_with(&TelemetryConfig::default(), &[]), Ok(None));
}

#[test]
fn the_file_alone_exports_over_http_with_the_defaults() {
    let export = export_with(&with_endpoint("http://collector:4318/"), &[])
        .expect("valid")
        .expect("on");
    assert_eq!(export.protocol, Protocol::HttpProtobuf);
    assert_eq!(export.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(export.service_name.as_deref(), Some("airlock"));
    assert_eq!(
        export.sampling,
        Sampling {
            ratio: 1.0,
            parent_based: true
        }
    );
    assert_eq!(
        export.queue,
        Queue {
            max_queue: 2048,
            max_batch: 512,
            delay: Duration::from_secs(5)
        }
    );
}

#[test]
fn variables_win_over_the_file() {
    let file = TelemetryConfig {
        service_name: "from-file".to_owned(),
        sample_ratio: 0.5,
        ..with_endpoint("http://file:4318")
    };
    let export = export_with(
        &file,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ],
    )
    .expect("valid")
    .expect("on");
    assert_eq!(export.protocol, Protocol::Grpc);
    assert_eq!(export.endpoint, "http://env:4317", "gRPC takes no path");
    assert_eq!(export.service_name.as_deref(), Some("from-env"));
    assert_eq!(
        export.sampling,
        Sampling {
            ratio: 0.25,
            parent_based: false
        }
    );
    assert_eq!(export.queue.delay, Duration::from_millis(200));
    assert_eq!(export.queue.max_queue, 100);
    assert_eq!(
        export.queue.max_batch, 100,
        "a batch never exceeds the queue"
    );
}

#[test]
fn the_service_name_comes_from_the_variables_first() {
    let file = TelemetryConfig {
        service_name: "from-file".to_owned(),
        ..with_endpoint("http://collector:4318")
    };
    let name = |vars: &[(&str, &str)]| {
        export_with(&file, vars)
            .expect("valid")
            .expect("on")
            .service_name
    };
    assert_eq!(name(&[]).as_deref(), Some("from-file"));
    assert_eq!(
        name(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=data, service.name=from-list"
        )]),
        None,
        "the list's own service.name is left to it"
    );
    assert_eq!(
        name(&[("OTEL_RESOURCE_ATTRIBUTES", "team=data")]).as_deref(),
        Some("from-file")
    );
    assert_eq!(
        name(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-list"),
            ("OTEL_SERVICE_NAME", "from-name"),
        ])
        .as_deref(),
        Some("from-name")
    );
}

#[test]
fn the_signal_endpoint_is_used_as_it_is() {
    let export = export_with(
        &with_endpoint("http://file:4318"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://traces.example/otlp",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    )
    .expect("valid")
    .expect("on");
    assert_eq!(export.endpoint, "https://traces.example/otlp");
    assert_eq!(
        export.protocol,
        Protocol::HttpProtobuf,
        "the signal's own wins"
    );
    // An endpoint in the environment alone switches traces on.
    let export = export_with(
        &TelemetryConfig::default(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318")],
    )
    .expect("valid")
    .expect("on");
    assert_eq!(export.endpoint, "http://general:4318/v1/traces");
}

#[test]
fn traces_can_be_switched_off_by_variable() {
    let file = with_endpoint("http://collector:4318");
    for vars in [
        [("OTEL_SDK_DISABLED", "true")],
        [("OTEL_SDK_DISABLED", "TRUE")],
        [("OTEL_TRACES_EXPORTER", "none")],
    ] {
        assert_eq!(export_with(&file, &vars), Ok(None), "{vars:?}");
    }
    assert!(matches!(
        export_with(&file, &[("OTEL_SDK_DISABLED", "false")]),
        Ok(Some(_))
    ));
}

#[test]
fn what_cannot_be_honoured_is_named() {
    let file = with_endpoint("http://collector:4318");
    for (name, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "udp://x"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://user:secret@collector:4318",
        ),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
    ] {
        let error = export_with(&file, &[(name, value)]).expect_err(name);
        assert_eq!(error.key, name, "{error:?}");
    }
    for arg in ["1.5", "half"] {
        let error = export_with(
            &file,
            &[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ],
        )
        .expect_err(arg);
        assert_eq!(error.key, "OTEL_TRACES_SAMPLER_ARG");
    }
    let bad_file = TelemetryConfig {
        sample_ratio: 2.0,
        ..file
    };
    assert_eq!(
        export_with(&bad_file, &[]).expect_err("bad file").key,
        "telemetry.sample_ratio"
    );
}

#[test]
fn every_sampler_name_maps() {
    let file = with_endpoint("http://collector:4318");
    for (name, ratio, parent_based) in [
        ("always_on", 1.0, false),
        ("always_off", 0.0, false),
        ("traceidratio", 0.1, false),
        ("parentbased_always_on", 1.0, true),
        ("parentbased_always_off", 0.0, true),
        ("parentbased_traceidratio", 0.1, true),
    ] {
        let export = export_with(
            &file,
            &[
                ("OTEL_TRACES_SAMPLER", name),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ],
        )
        .expect(name)
        .expect("on");
        assert_eq!(
            export.sampling,
            Sampling {
                ratio,
                parent_based
            },
            "{name}"
        );
    }
}
