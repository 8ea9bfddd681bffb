pytest_plugins = ["tests.fixtures.etcd", "tests.fixtures.netns", "tests.fixtures.tls",
                  "tests.integration.confd_conformance.conftest"]
