pytest_plugins = ["tests.fixtures.etcd", "tests.fixtures.netns", "tests.fixtures.tls",
                  "tests.fixtures.kube",
                  "tests.integration.confd_conformance.conftest"]
