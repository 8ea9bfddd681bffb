pytest_plugins = ["tests.fixtures.etcd", "tests.fixtures.netns", "tests.fixtures.tls"]
