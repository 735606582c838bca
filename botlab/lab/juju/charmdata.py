"""Public metadata of the Charmed Kubernetes charms the lab's charm catalogue serves (data only).

Taken from each charm's source (metadata.yaml / charmcraft.yaml, config.yaml, actions.yaml at the
`source` repository's default branch, 2025-2026), as `juju info --config` would show them:
endpoints `{name: (interface, scope)}`, resources `{name: (type, filename, description)}`,
options `{name: (type, default, first sentence of the description)}`, actions
`{name: (description, params schema, required params)}`. Reactive charms (etcd, easyrsa,
containerd, flannel) also get what their build layers add (layer:tls-client's `certificates`,
layer:nagios's `nrpe-external-master` and `nagios_*` options, layer:debug's `debug` action).

`catalogue.py` turns these into charms with channels, revisions and unit behaviour.
"""

from __future__ import annotations

from typing import Any

CHARMS: dict[str, dict[str, Any]] = {
    "kubernetes-control-plane": {
        "source": "https://github.com/charmed-kubernetes/charm-kubernetes-control-plane",
        "summary": "The Kubernetes control plane.",
        "subordinate": False,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {
            "cni": ("kubernetes-cni", "container"),
            "container-runtime": ("container-runtime", "container"),
            "cos-agent": ("cos_agent", "global"),
            "kube-control": ("kube-control", "global"),
            "tokens": ("tokens", "global"),
        },
        "requires": {
            "ceph-client": ("ceph-client", "global"),
            "aws": ("aws-integration", "global"),
            "gcp": ("gcp-integration", "global"),
            "azure": ("azure-integration", "global"),
            "openstack": ("openstack-integration", "global"),
            "keystone-credentials": ("keystone-credentials", "global"),
            "certificates": ("tls-certificates", "global"),
            "dns-provider": ("kube-dns", "global"),
            "etcd": ("etcd", "global"),
            "ha": ("hacluster", "global"),
            "loadbalancer-external": ("loadbalancer", "global"),
            "loadbalancer-internal": ("loadbalancer", "global"),
            "external-cloud-provider": ("external_cloud_provider", "global"),
            "vault-kv": ("vault-kv", "global"),
        },
        "peers": {"coordinator": ("coordinator", "global"), "peer": ("kubernetes-control-plane-peer", "global")},
        "resources": {"cni-plugins": ("file", "cni-plugins.tar.gz", "CNI network plugins for Kubernetes")},
        "options": {
            "allow-privileged": ("string", "auto", "Allows kube-apiserver to accept privileged containers."),
            "api-extra-args": (
                "string",
                "",
                "Space separated list of flags and key=value pairs that will be passed as arguments to kube-apiserver.",
            ),
            "audit-policy": (
                "string",
                "apiVersion: audit.k8s.io/v1\n"
                "kind: Policy\n"
                "rules:\n"
                "# Don't log read-only requests from the apiserver\n"
                "- level: None\n"
                '  users: ["system:apiserver"]\n'
                '  verbs: ["get", "list", "watch"]\n'
                "# Don't log kube-proxy watches\n"
                "- level: None\n"
                '  users: ["system:kube-proxy"]\n'
                '  verbs: ["watch"]\n'
                "  resources:\n"
                '  - resources: ["endpoints", "services"]\n'
                "# Don't log nodes getting their own status\n"
                "- level: None\n"
                '  userGroups: ["system:nodes"]\n'
                '  verbs: ["get"]\n'
                "  resources:\n"
                '  - resources: ["nodes"]\n'
                "# Don't log kube-controller-manager and kube-scheduler getting endpoints\n"
                "- level: None\n"
                '  users: ["system:unsecured"]\n'
                '  namespaces: ["kube-system"]\n'
                '  verbs: ["get"]\n'
                "  resources:\n"
                '  - resources: ["endpoints"]\n'
                "# Log everything else at the Request level.\n"
                "- level: Request\n"
                "  omitStages:\n"
                "  - RequestReceived\n",
                "Audit policy passed to kube-apiserver via --audit-policy-file.",
            ),
            "audit-webhook-config": (
                "string",
                "",
                "Audit webhook config passed to kube-apiserver via --audit-webhook-config-file.",
            ),
            "authn-webhook-endpoint": (
                "string",
                "",
                "Custom endpoint to check when authenticating kube-apiserver requests.",
            ),
            "authorization-mode": ("string", "Node,RBAC", "Comma separated authorization modes."),
            "authorization-webhook-config-file": (
                "string",
                "",
                "Authorization webhook config passed to kube-apiserver via --authorization-webhook-config-file.",
            ),
            "channel": ("string", "latest/edge", "Snap channel to install Kubernetes control plane services from"),
            "controller-manager-extra-args": (
                "string",
                "",
                "Space separated list of flags and key=value pairs that will be "
                "passed as arguments to kube-controller-manager.",
            ),
            "default-cni": ("string", "", "Default CNI network to use when multiple CNI subordinates are related."),
            "default-storage": ("string", "auto", "The storage class to make the default storage class."),
            "dns_domain": ("string", "cluster.local", "The local domain for cluster dns"),
            "dns-provider": ("string", "auto", "DNS provider addon to use."),
            "enable-dashboard-addons": ("boolean", True, "Deploy the Kubernetes Dashboard"),
            "enable-nvidia-plugin": (
                "string",
                "false",
                "Deprecation notice: This option is deprecated and may be removed in a future release.",
            ),
            "enable-metrics": (
                "boolean",
                True,
                "If true the metrics server for Kubernetes will be deployed onto the cluster "
                "managed entirely by kubernetes addons.",
            ),
            "extra_sans": (
                "string",
                "",
                "Space-separated list of extra SAN entries to add to the x509 certificate created for "
                "the control plane nodes.",
            ),
            "ha-cluster-vip": (
                "string",
                "",
                "Virtual IP for the charm to use with the HA Cluster subordinate charm Mutually "
                "exclusive with ha-cluster-dns.",
            ),
            "ha-cluster-dns": ("string", "", "DNS entry to use with the HA Cluster subordinate charm."),
            "ignore-kube-system-pods": (
                "string",
                "",
                "Space separated list of pod names in the kube-system namespace to ignore "
                "when checking for running pods.",
            ),
            "ignore-missing-cni": (
                "boolean",
                False,
                "If ignore-missing-cni is set to true, the charm will not enter a blocked "
                "state if a CNI has not been...",
            ),
            "image-registry": ("string", "rocks.canonical.com:443/cdk", "Container image registry to use for CDK."),
            "kubelet-extra-args": (
                "string",
                "",
                "Space separated list of flags and key=value pairs that will be passed as arguments to kubelet.",
            ),
            "kubelet-extra-config": ("string", "{}", "Extra configuration to be passed to kubelet."),
            "labels": (
                "string",
                "node-role.kubernetes.io/control-plane=",
                "Labels can be used to organize and to select subsets of nodes in the cluster.",
            ),
            "loadbalancer-ips": (
                "string",
                "",
                "Space separated list of IP addresses of loadbalancers in front of the control plane.",
            ),
            "proxy-extra-args": (
                "string",
                "",
                "Space separated list of flags and key=value pairs that will be passed as arguments to kube-proxy.",
            ),
            "proxy-extra-config": ("string", "{}", "Extra configuration to be passed to kube-proxy."),
            "register-with-taints": (
                "string",
                "node-role.kubernetes.io/control-plane:NoSchedule",
                "Space-separated list of taints to apply to this node at registration time.",
            ),
            "scheduler-extra-args": (
                "string",
                "",
                "Space separated list of flags and key=value pairs that will be passed as arguments to kube-scheduler.",
            ),
            "service-cidr": ("string", "10.152.183.0/24", "CIDR to use for Kubernetes services."),
            "sysctl": (
                "string",
                "{net.ipv4.conf.all.forwarding: 1, net.ipv4.conf.all.rp_filter: 1, "
                "net.ipv4.neigh.default.gc_thresh1: 128, net.ipv4.neigh.default.gc_thresh2: 28672, "
                "net.ipv4.neigh.default.gc_thresh3: 32768, net.ipv6.neigh.default.gc_thresh1: 128, "
                "net.ipv6.neigh.default.gc_thresh2: 28672, net.ipv6.neigh.default.gc_thresh3: 32768, "
                "fs.inotify.max_user_instances: 8192, fs.inotify.max_user_watches: 1048576, kernel.panic: "
                "10, kernel.panic_on_oops: 1, vm.overcommit_memory: 1}",
                "YAML formatted associative array of sysctl values, e.g.: '{kernel.pid_max: 4194303}'.",
            ),
        },
        "actions": {
            "cis-benchmark": (
                "Run the CIS Kubernetes Benchmark against snap-based components.",
                {
                    "apply": {
                        "type": "string",
                        "default": "none",
                        "description": "Apply remedies to address benchmark failures.",
                    },
                    "config": {
                        "type": "string",
                        "default": "https://github.com/charmed-kubernetes/kube-bench-config/archive/cis-1.23.zip#sha1=3cda2fc68b4ca36f69f5913bfc0b02576e7a3b3d",
                        "description": "Archive containing configuration files to use when running kube-bench.",
                    },
                    "release": {
                        "type": "string",
                        "default": "https://github.com/aquasecurity/kube-bench/releases/download/v0.11.2/kube-bench_0.11.2_linux_amd64.tar.gz#sha256=26ecc7074560c761bd9fbc0f9dd4bb6b951b092c32654d96864607482e79ae42",
                        "description": "Archive containing the 'kube-bench' binary to run.",
                    },
                },
                [],
            ),
            "get-kubeconfig": ("Retrieve Kubernetes cluster config, including credentials", {}, []),
            "upgrade": ("Upgrade the Kubernetes snaps", {}, []),
            "user-create": (
                "Create a new user",
                {
                    "name": {"type": "string", "description": "Username for the new user.", "minLength": 2},
                    "groups": {"type": "string", "description": "Optional comma-separated list of groups eg."},
                },
                ["name"],
            ),
            "user-delete": (
                "Delete an existing user",
                {"name": {"type": "string", "description": "Username of the user to delete", "minLength": 2}},
                ["name"],
            ),
            "user-list": ("List existing users", {}, []),
            "restart": ("Restart the Kubernetes control-plane services on demand.", {}, []),
            "namespace-list": ("List existing k8s namespaces", {}, []),
            "namespace-create": (
                "Create new namespace",
                {"name": {"type": "string", "description": "Namespace name eg.", "minLength": 2}},
                ["name"],
            ),
            "namespace-delete": (
                "Delete namespace",
                {"name": {"type": "string", "description": "Namespace name eg.", "minLength": 2}},
                ["name"],
            ),
            "apply-manifest": (
                "Apply JSON formatted Kubernetes manifest to cluster.",
                {
                    "json": {
                        "type": "string",
                        "description": "The content of the manifest to deploy in JSON format",
                        "minLength": 2,
                    }
                },
                ["json"],
            ),
        },
    },
    "kubernetes-worker": {
        "source": "https://github.com/charmed-kubernetes/charm-kubernetes-worker",
        "summary": "The workload bearing units of a Kubernetes cluster.",
        "subordinate": False,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {
            "cni": ("kubernetes-cni", "container"),
            "container-runtime": ("container-runtime", "container"),
            "cos-agent": ("cos_agent", "global"),
            "ingress-proxy": ("http", "global"),
        },
        "requires": {
            "aws": ("aws-integration", "global"),
            "gcp": ("gcp-integration", "global"),
            "azure": ("azure-integration", "global"),
            "certificates": ("tls-certificates", "global"),
            "kube-control": ("kube-control", "global"),
            "tokens": ("tokens", "global"),
        },
        "peers": {"coordinator": ("coordinator", "global")},
        "resources": {"cni-plugins": ("file", "cni-plugins.tar.gz", "CNI network plugins for Kubernetes")},
        "options": {
            "channel": ("string", "latest/edge", "Snap channel to install Kubernetes worker services from"),
            "ignore-missing-cni": (
                "boolean",
                False,
                "If ignore-missing-cni is set to true, the charm will not enter a blocked "
                "state if a CNI has not been...",
            ),
            "ingress": ("boolean", True, "Deploy nginx-ingress-controller to handle Ingress resources."),
            "ingress-default-ssl-certificate": (
                "string",
                "",
                "SSL certificate to be used by the default HTTPS server.",
            ),
            "ingress-default-ssl-key": ("string", "", "Private key to be used by the default HTTPS server."),
            "ingress-ssl-chain-completion": (
                "boolean",
                False,
                "Enable chain completion for TLS certificates used by the nginx ingress controller.",
            ),
            "ingress-ssl-passthrough": ("boolean", False, "Enable ssl passthrough on ingress server."),
            "ingress-use-forwarded-headers": (
                "boolean",
                False,
                "If true, NGINX passes the incoming X-Forwarded-* headers to upstreams.",
            ),
            "ingress-proxy-real-ip-cidr": (
                "string",
                "0.0.0.0/0",
                "If `ingress-use-forwarded-headers` is enabled, "
                "`ingress-proxy-real-ip-cidr` defines the default IP/network "
                "address...",
            ),
            "kubelet-extra-args": (
                "string",
                "",
                "Space separated list of flags and key=value pairs that will be passed as arguments to kubelet.",
            ),
            "kubelet-extra-config": ("string", "{}", "Extra configuration to be passed to kubelet."),
            "labels": ("string", "", "Labels can be used to organize and to select subsets of nodes in the cluster."),
            "nginx-image": ("string", "auto", "Container image to use for the nginx ingress controller."),
            "proxy-extra-args": (
                "string",
                "",
                "Space separated list of flags and key=value pairs that will be passed as arguments to kube-proxy.",
            ),
            "proxy-extra-config": ("string", "{}", "Extra configuration to be passed to kube-proxy."),
            "sysctl": (
                "string",
                "{net.ipv4.conf.all.forwarding: 1, net.ipv4.conf.all.rp_filter: 1, "
                "net.ipv4.neigh.default.gc_thresh1: 128, net.ipv4.neigh.default.gc_thresh2: 28672, "
                "net.ipv4.neigh.default.gc_thresh3: 32768, net.ipv6.neigh.default.gc_thresh1: 128, "
                "net.ipv6.neigh.default.gc_thresh2: 28672, net.ipv6.neigh.default.gc_thresh3: 32768, "
                "fs.inotify.max_user_instances: 8192, fs.inotify.max_user_watches: 1048576, kernel.panic: "
                "10, kernel.panic_on_oops: 1, vm.overcommit_memory: 1}",
                "YAML formatted associative array of sysctl values, e.g.: '{kernel.pid_max: 4194303}'.",
            ),
        },
        "actions": {
            "cis-benchmark": (
                "Run the CIS Kubernetes Benchmark against snap-based components.",
                {
                    "apply": {
                        "type": "string",
                        'default"': "none",
                        "description": "Apply remedies to address benchmark failures.",
                    },
                    "config": {
                        "type": "string",
                        "default": "https://github.com/charmed-kubernetes/kube-bench-config/archive/cis-1.23.zip#sha1=3cda2fc68b4ca36f69f5913bfc0b02576e7a3b3d",
                        "description": "Archive containing configuration files to use when running kube-bench.",
                    },
                    "release": {
                        "type": "string",
                        "default": "https://github.com/aquasecurity/kube-bench/releases/download/v0.6.8/kube-bench_0.6.8_linux_amd64.tar.gz#sha256=5f9c5231949bd022a6993f5297cc05bb80a1b7c36a43cefed0a8c8af26778863",
                        "description": "Archive containing the 'kube-bench' binary to run.",
                    },
                },
                [],
            ),
            "upgrade": ("Upgrade the Kubernetes snaps", {}, []),
        },
    },
    "kubeapi-load-balancer": {
        "source": "https://github.com/charmed-kubernetes/charm-kubeapi-load-balancer",
        "summary": "Nginx Load Balancer",
        "subordinate": False,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {"lb-consumers": ("loadbalancer", "global"), "cos-agent": ("cos_agent", "global")},
        "requires": {
            "apiserver": ("http", "global"),
            "certificates": ("tls-certificates", "global"),
            "ha": ("hacluster", "global"),
        },
        "peers": {},
        "resources": {
            "nginx-prometheus-exporter": (
                "file",
                "nginx-prometheus-exporter.tar.gz",
                "Binary Release of the nginx prometheus exporter "
                "https://github.com/nginxinc/nginx-prometheus-exporter/releases",
            )
        },
        "options": {
            "extra_sans": (
                "string",
                "",
                "A space-separated list of additional Subject Alternative Names (SAN) entries to "
                "include in the x509 certificate...",
            ),
            "proxy_read_timeout": ("int", 600, "The timeout in seconds for reading a response from proxy server."),
            "loadbalancer-ips": (
                "string",
                "",
                "A space-separated list of IP addresses of load balancers in front of the control plane.",
            ),
            "nginx-events-config": (
                "string",
                "",
                "This option allows the juju operator to configure directives inside the "
                "nginx events context in /etc/nginx/nginx.conf.",
            ),
            "nginx-main-config": (
                "string",
                "",
                "This option allows the juju operator to configure directives in the main "
                "context block of /etc/nginx/nginx.conf.",
            ),
            "nginx-http-config": (
                "string",
                "",
                "This option allows the juju operator to configure directives in the http "
                "context block of /etc/nginx/nginx.conf.",
            ),
            "ha-cluster-dns": (
                "string",
                "",
                "This option specifies the DNS entry to be used in conjunction with the HA Cluster subordinate charm.",
            ),
            "ha-cluster-vip": (
                "string",
                "",
                "A space-separated list of virtual IPs that the charm can utilize in conjunction "
                "with the HA Cluster subordinate charm.",
            ),
        },
        "actions": {},
    },
    "etcd": {
        "source": "https://github.com/charmed-kubernetes/layer-etcd",
        "summary": "Deploy a TLS terminated ETCD Cluster",
        "subordinate": False,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {
            "db": ("etcd", "global"),
            "proxy": ("etcd-proxy", "global"),
            "prometheus": ("prometheus-manual", "global"),
            "grafana": ("grafana-dashboard", "global"),
            "nrpe-external-master": ("nrpe-external-master", "container"),
        },
        "requires": {"certificates": ("tls-certificates", "global")},
        "peers": {"cluster": ("etcd", "global")},
        "resources": {
            "snapshot": ("file", "snapshot.tar.gz", "Tarball snapshot of an etcd clusters data."),
            "core": ("file", "core.snap", "Snap package of core [DEPRECATED] in favor of using a Snap Store Proxy."),
            "etcd": ("file", "etcd.snap", "Snap package of etcd [DEPRECATED] in favor of using a Snap Store Proxy."),
        },
        "options": {
            "port": ("int", 2379, "Port to run the public ETCD service on"),
            "management_port": ("int", 2380, "Port to run the ETCD Management service"),
            "channel": ("string", "auto", "The snap channel from which to install etcd (e.g."),
            "heartbeat_interval": (
                "int",
                100,
                "The frequency with which the leader will notify followers that it is still the leader.",
            ),
            "election_timeout": (
                "int",
                1000,
                "How long a follower node will go without hearing a heartbeat before attempting "
                "to become leader itself.",
            ),
            "snapshot_count": (
                "string",
                "auto",
                "Creating snapshots with the V2 backend can be expensive, so snapshots are only "
                "created after a given number of...",
            ),
            "snapd_refresh": ("string", "max", "How often snapd handles updates for installed snaps."),
            "bind_to_all_interfaces": ("boolean", True, "The service binds to all network interfaces if true."),
            "bind_with_insecure_http": ("boolean", False, "The service binds to localhost:4001 with http if true."),
            "tls_cipher_suites": ("string", "", "Applies to etcd 3.x+ only."),
            "nagios_context": ("string", "juju", "Used by the nrpe subordinate charms."),
            "nagios_servicegroups": ("string", "", "A comma-separated list of nagios servicegroups."),
        },
        "actions": {
            "alarm-disarm": ("Disarm all alarms.", {}, []),
            "alarm-list": ("List all alarms.", {}, []),
            "compact": (
                "Compact etcd event history.",
                {
                    "revision": {"type": "string", "default": "", "description": "Revision to compact to."},
                    "physical": {
                        "type": "boolean",
                        "default": False,
                        "description": "Setting to True will cause the compaction process to exit "
                        "only after all revisions have been...",
                    },
                },
                [],
            ),
            "defrag": ("Defragment the storage of the local etcd member.", {}, []),
            "health": ("Report the health of the cluster.", {}, []),
            "package-client-credentials": (
                "Generate a tarball of the client certificates to connect to the cluster remotely.",
                {},
                [],
            ),
            "snap-upgrade": (
                "Execute a migration from the apt package to a snap package format.",
                {
                    "use-resource": {
                        "type": "boolean",
                        "default": False,
                        "description": "Default to using the resource (offline environments)",
                    }
                },
                [],
            ),
            "snapshot": (
                "Export and compress a backup of the data in the Etcd cluster.",
                {
                    "target": {
                        "type": "string",
                        "default": "/home/ubuntu/etcd-snapshots",
                        "description": "Location to save the etcd snapshot.",
                    },
                    "keys-version": {"type": "string", "default": "v3", "description": "Version of keys to snapshoot."},
                },
                [],
            ),
            "restore": (
                "Restore an etcd cluster's data from a snapshot tarball.",
                {
                    "target": {
                        "type": "string",
                        "default": "/home/ubuntu",
                        "description": "Path on disk to save any pre-existing data.",
                    },
                    "skip-backup": {
                        "type": "boolean",
                        "default": True,
                        "description": "Dont backup any existing data, and skip directly to data restoration.",
                    },
                },
                [],
            ),
            "debug": ("Collect debug data.", {}, []),
        },
    },
    "easyrsa": {
        "source": "https://github.com/charmed-kubernetes/layer-easyrsa",
        "summary": "Delivers EasyRSA to create a Certificate Authority (CA).",
        "subordinate": False,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {"client": ("tls-certificates", "global")},
        "requires": {},
        "peers": {},
        "resources": {
            "easyrsa": (
                "file",
                "easyrsa.tgz",
                "The release of the EasyRSA software you would like to use to create certificate "
                "authority (CA) and other Public Key...",
            )
        },
        "options": {},
        "actions": {
            "backup": ("Creates a backup bundle containing current easyrsa pki.", {}, []),
            "restore": (
                "Restores a pki previously backed up by 'backup' action",
                {
                    "name": {
                        "type": "string",
                        "description": "Name of the backup file from which the pki will be restored.",
                    }
                },
                ["name"],
            ),
            "list-backups": ("List all available easyrsa backups.", {}, []),
            "delete-backup": (
                "Delete specified (or all) easyrsa backups.",
                {
                    "name": {"type": "string", "description": "Name of the backup to be deleted."},
                    "all": {
                        "type": "boolean",
                        "description": "If set to 'true', all backups on the unit will be deleted.",
                    },
                },
                [],
            ),
            "debug": ("Collect debug data.", {}, []),
        },
    },
    "containerd": {
        "source": "https://github.com/charmed-kubernetes/charm-containerd",
        "summary": "Containerd container runtime subordinate",
        "subordinate": True,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {"untrusted": ("untrusted-container-runtime", "container")},
        "requires": {
            "containerd": ("container-runtime", "container"),
            "docker-registry": ("docker-registry", "global"),
        },
        "peers": {},
        "resources": {
            "containerd": (
                "file",
                "containerd.tgz",
                "containerd binary release The charm will replace the binaries from the distribution "
                "sources with the binaries from...",
            )
        },
        "options": {
            "custom_registries": ("string", "[]", "Registry endpoints and credentials."),
            "gpu_driver": ("string", "auto", "Override GPU driver installation."),
            "runtime": ("string", "auto", "Set a custom containerd runtime."),
            "kill_signal": ("string", "SIGTERM", "Set containerd systemd KillSignal."),
            "shim": ("string", "containerd-shim", "Set a custom containerd shim."),
            "http_proxy": ("string", "", "URL to use for HTTP_PROXY to be used by Containerd."),
            "https_proxy": ("string", "", "URL to use for HTTPS_PROXY to be used by Containerd."),
            "no_proxy": (
                "string",
                "",
                "Comma-separated list of destinations (either domain names or IP addresses) which should "
                "be accessed directly, rather...",
            ),
            "config_version": ("string", "v2", "Containerd config version."),
            "nvidia_apt_key_urls": (
                "string",
                "https://nvidia.github.io/nvidia-container-runtime/gpgkey\n"
                "https://developer.download.nvidia.com/compute/cuda/repos/{id}{version_id_no_dot}/x86_64/3bf863cc.pub\n",
                "Space-separated list of APT GPG key URLs to add when using Nvidia GPUs.",
            ),
            "nvidia_apt_sources": (
                "string",
                "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
                "deb "
                "https://nvidia.github.io/nvidia-container-runtime/{id}{version_id}/$(ARCH) /\n"
                "deb "
                "https://developer.download.nvidia.com/compute/cuda/repos/{id}{version_id_no_dot}/x86_64 "
                "/\n",
                "Newline-separated list of APT sources to add when using Nvidia GPUs.",
            ),
            "nvidia_apt_packages": (
                "string",
                "cuda-drivers nvidia-container-runtime",
                "Space-separated list of APT packages to install when using Nvidia GPUs.",
            ),
        },
        "actions": {
            "upgrade-containerd": (
                "Upgrades Containerd to latest repository version Deprecated action, instead "
                "use $ juju run-action --wait...",
                {
                    "dry-run": {
                        "type": "boolean",
                        "description": "Only run a dry-run upgrade and report the available version",
                    }
                },
                [],
            ),
            "upgrade-packages": (
                "Upgrades Containerd charm packages to latest repository version",
                {
                    "dry-run": {
                        "type": "boolean",
                        "default": False,
                        "description": "Only run a dry-run upgrade and report the available versions.",
                    },
                    "containerd": {
                        "type": "boolean",
                        "default": True,
                        "description": "Upgrade containerd in the event there are package updates available.",
                    },
                    "gpu": {
                        "type": "boolean",
                        "default": False,
                        "description": "Upgrade gpu drivers in the event there are package updates available.",
                    },
                    "force": {"type": "boolean", "default": False, "description": "Only works if `gpu=true`."},
                },
                [],
            ),
            "debug": ("Collect debug data.", {}, []),
        },
    },
    "docker": {
        "source": "https://github.com/charmed-kubernetes/charm-docker",
        "summary": "Docker container runtime subordinate",
        "subordinate": True,
        "bases": ["ubuntu@20.04", "ubuntu@22.04"],
        "provides": {},
        "requires": {
            "docker": ("container-runtime", "container"),
            "docker-registry": ("docker-registry", "global"),
        },
        "peers": {},
        "options": {
            "docker-opts": ("string", "", "Extra options to pass to the Docker daemon."),
            "docker_runtime": (
                "string",
                "auto",
                "Docker runtime to install: upstream, nvidia, apt, auto or custom.",
            ),
            "enable-cgroups": ("boolean", False, "Enable GRUB cgroup overrides cgroup_enable=memory swapaccount=1."),
            "http_proxy": ("string", "", "URL to use for HTTP_PROXY to be used by Docker."),
            "https_proxy": ("string", "", "URL to use for HTTPS_PROXY to be used by Docker."),
            "no_proxy": ("string", "", "Comma-separated list of destinations which should be accessed directly."),
        },
    },
    "calico": {
        "source": "https://github.com/charmed-kubernetes/charm-calico",
        "summary": "A robust Software Defined Network from Project Calico",
        "subordinate": True,
        "bases": ["ubuntu@20.04", "ubuntu@22.04"],
        "provides": {},
        "requires": {"etcd": ("etcd", "global"), "cni": ("kubernetes-cni", "container")},
        "peers": {},
        "resources": {
            "calico": ("file", "calico.tar.gz", "Calico resource tarball for amd64"),
            "calico-arm64": ("file", "calico.tar.gz", "Calico resource tarball for arm64"),
        },
        "options": {
            "bgp-service-cluster-ips": (
                "string",
                "",
                "Space-separated list of service cluster CIDRs to advertise over BGP.",
            ),
            "bgp-service-external-ips": (
                "string",
                "",
                "Space-separated list of service external CIDRs to advertise over BGP.",
            ),
            "bgp-service-loadbalancer-ips": (
                "string",
                "",
                "Space-separated list of service load-balancer CIDRs to advertise over BGP.",
            ),
            "ipip": ("string", "Never", "IPIP encapsulation mode."),
            "image-registry": ("string", "rocks.canonical.com:443/cdk", "Source registry of Calico images."),
            "vxlan": ("string", "Never", "VXLAN encapsulation mode."),
            "veth-mtu": ("int", None, "Set veth MTU size."),
            "nat-outgoing": ("boolean", True, "NAT outgoing traffic"),
            "cidr": ("string", "192.168.0.0/16", "Network CIDR assigned to Calico."),
            "manage-pools": (
                "boolean",
                True,
                "If true, a default pool is created using the cidr and ipip charm configuration values.",
            ),
            "global-as-number": ("int", 64512, "Global AS number."),
            "subnet-as-numbers": ("string", "{}", "Mapping of subnets to AS numbers, specified as YAML."),
            "unit-as-numbers": ("string", "{}", "Mapping of unit IDs to AS numbers, specified as YAML."),
            "node-to-node-mesh": (
                "boolean",
                True,
                "When enabled, each Calico node will peer with every other Calico node in the cluster.",
            ),
            "global-bgp-peers": ("string", "[]", "List of global BGP peers."),
            "subnet-bgp-peers": ("string", "{}", "Mapping of subnets to lists of BGP peers."),
            "unit-bgp-peers": ("string", "{}", "Mapping of unit IDs to lists of BGP peers."),
            "route-reflector-cluster-ids": ("string", "{}", "Mapping of unit IDs to route reflector cluster IDs."),
            "ignore-loose-rpf": ("boolean", False, "Enable or disable IgnoreLooseRPF for Calico Felix."),
            "disable-vxlan-tx-checksumming": (
                "boolean",
                True,
                "When set to true, if VXLAN encapsulation is in use, then the charm "
                "will disable TX checksumming on the vxlan.calico...",
            ),
            "release": ("string", None, "Version of Calico to deploy"),
        },
        "actions": {
            "list-versions": ("List Calico Versions supported by this charm", {}, []),
            "list-resources": (
                "List Provider and Storage Resources of configured version",
                {
                    "resources": {
                        "type": "string",
                        "default": "",
                        "description": "Space separated list of kubernetes resource types to filter list result",
                    }
                },
                [],
            ),
            "scrub-resources": (
                "Remove deployments other than the current one",
                {
                    "resources": {
                        "type": "string",
                        "default": "",
                        "description": "Space separated list of kubernetes resource types to filter scrubbing",
                    }
                },
                [],
            ),
            "sync-resources": (
                "Add kubernetes resources which should be created by this charm which aren't "
                "present within the cluster.",
                {
                    "resources": {
                        "type": "string",
                        "default": "",
                        "description": "Space separated list of kubernetes resource types "
                        "to use a filter during the sync.",
                    }
                },
                [],
            ),
        },
    },
    "flannel": {
        "source": "https://github.com/charmed-kubernetes/charm-flannel",
        "summary": "A charm that provides a robust Software Defined Network",
        "subordinate": True,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {"nrpe-external-master": ("nrpe-external-master", "container")},
        "requires": {"etcd": ("etcd", "global"), "cni": ("kubernetes-cni", "container")},
        "peers": {},
        "resources": {
            "flannel-amd64": ("file", "flannel.tar.gz", "A tarball packaged release of flannel for amd64"),
            "flannel-arm64": ("file", "flannel.tar.gz", "A tarball packaged release of flannel for arm64"),
            "flannel-s390x": ("file", "flannel.tar.gz", "A tarball packaged release of flannel for s390x"),
        },
        "options": {
            "iface": ("string", "", "The interface to bind flannel overlay networking."),
            "cidr": ("string", "10.1.0.0/16", "Network CIDR to assign to Flannel"),
            "port": ("int", 0, "Network port to use for Flannel"),
            "vni": ("int", 0, "VXLAN network id to assign to Flannel"),
            "nagios_context": ("string", "juju", "Used by the nrpe subordinate charms."),
            "nagios_servicegroups": ("string", "", "A comma-separated list of nagios servicegroups."),
        },
        "actions": {"debug": ("Collect debug data.", {}, [])},
    },
    "cilium": {
        "source": "https://github.com/charmed-kubernetes/charm-cilium",
        "summary": "A Kubernetes CNI solution developed on top of eBPF",
        "subordinate": True,
        "bases": ["ubuntu@22.04", "ubuntu@24.04"],
        "provides": {"grafana-dashboard": ("grafana_dashboard", "global")},
        "requires": {
            "cni": ("kubernetes-cni", "container"),
            "send-remote-write": ("prometheus_remote_write", "global"),
        },
        "peers": {},
        "resources": {
            "cilium": (
                "file",
                "cilium.tar.gz",
                "CLI to install, manage & troubleshoot Kubernetes clusters running Cilium.",
            ),
            "hubble": ("file", "hubble.tar.gz", "CLI to access the observability data collected by Hubble."),
        },
        "options": {
            "cluster-pool-ipv4-cidr": ("string", "10.0.0.0/8", "IPv4 CIDR Range for Pods in cluster."),
            "cluster-pool-ipv4-mask-size": ("string", "24", "Mask size for each IPv4 podCIDR per node."),
            "enable-cilium-metrics": ("boolean", False, "Expose Prometheus metrics for the Cilium CNI components."),
            "enable-hubble": ("boolean", False, "Enable the Hubble Observability stack for Cilium."),
            "enable-hubble-metrics": (
                "string",
                "",
                "Expose Prometheus metrics for the Hubble Observability components.",
            ),
            "enable-session-affinity": ("boolean", False, "Enable session affinity for Cilium."),
            "image-registry": ("string", "rocks.canonical.com:443/cdk", "Source registry of Cilium CNI images."),
            "port-forward-hubble": ("boolean", False, "Enable the port-forward service for Hubble on each unit."),
            "release": ("string", None, "Version of Cilium to deploy"),
            "tunnel-protocol": ("string", "vxlan", "Type of Cilium tunnel encapsulation protocol."),
            "tunnel-port": ("string", None, "Determines the port used for tunnel encapsulation."),
        },
        "actions": {
            "list-versions": ("List Cilium Releases supported by this charm", {}, []),
            "list-resources": (
                "List Cilium Resources of the configured version",
                {
                    "controller": {
                        "type": "string",
                        "default": "",
                        "description": 'Filter list based on "cilium" or "hubble" manifests.',
                    },
                    "resources": {
                        "type": "string",
                        "default": "",
                        "description": "Space separated list of kubernetes resource types to filter list result",
                    },
                },
                [],
            ),
        },
    },
}
