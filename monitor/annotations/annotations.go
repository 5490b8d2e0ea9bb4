// Package annotations names the io.kubernetes.cri-o.* OCI annotation keys that CRI-O
// stores in a bundle's config.json (docs/trust.md §8).
//
// The monitor reads only ContainerType, SandboxID, TrustedSandbox and PrivilegedRuntime,
// and only when trust-based runtime selection is active. The other keys are exported so
// that container managers written in Go can write and read the same namespace without
// restating the strings.
package annotations

// Keys of the io.kubernetes.cri-o.* namespace.
const (
	// Annotations holds a JSON object of the kubelet's annotations.
	Annotations = "io.kubernetes.cri-o.Annotations"
	// ContainerID is the infra container id (sandbox only).
	ContainerID = "io.kubernetes.cri-o.ContainerID"
	// ContainerName is the infra container name (sandbox only).
	ContainerName = "io.kubernetes.cri-o.ContainerName"
	// ContainerType is ContainerTypeSandbox or ContainerTypeContainer.
	ContainerType = "io.kubernetes.cri-o.ContainerType"
	// Created is the creation time, RFC 3339 with nanoseconds.
	Created = "io.kubernetes.cri-o.Created"
	// HostName is the sandbox hostname.
	HostName = "io.kubernetes.cri-o.HostName"
	// Image is the container's image.
	Image = "io.kubernetes.cri-o.Image"
	// KubeName is the Kubernetes pod name (sandbox).
	KubeName = "io.kubernetes.cri-o.KubeName"
	// Labels holds a JSON object of labels.
	Labels = "io.kubernetes.cri-o.Labels"
	// LogPath is the container log path (what the monitor gets as -l).
	LogPath = "io.kubernetes.cri-o.LogPath"
	// Metadata holds the CRI metadata as JSON.
	Metadata = "io.kubernetes.cri-o.Metadata"
	// Name is the container or pod name.
	Name = "io.kubernetes.cri-o.Name"
	// PrivilegedRuntime is "true" for a privileged container.
	PrivilegedRuntime = "io.kubernetes.cri-o.PrivilegedRuntime"
	// ResolvPath is the resolv.conf path.
	ResolvPath = "io.kubernetes.cri-o.ResolvPath"
	// SandboxID is the id of a workload container's sandbox.
	SandboxID = "io.kubernetes.cri-o.SandboxID"
	// SandboxName is the infra container name (containers).
	SandboxName = "io.kubernetes.cri-o.SandboxName"
	// ShmPath is the /dev/shm path.
	ShmPath = "io.kubernetes.cri-o.ShmPath"
	// TTY is "true" when the container has a terminal (mirrors -t).
	TTY = "io.kubernetes.cri-o.TTY"
	// Stdin is "true" when the container's stdin is open (mirrors -i).
	Stdin = "io.kubernetes.cri-o.Stdin"
	// StdinOnce is "true" when stdin closes after the first client (-i without --leave-stdin-open).
	StdinOnce = "io.kubernetes.cri-o.StdinOnce"
	// TrustedSandbox is the pod's trust hint: absent or exactly "true" means trusted.
	TrustedSandbox = "io.kubernetes.cri-o.TrustedSandbox"
)

// Values of ContainerType.
const (
	ContainerTypeSandbox   = "sandbox"   // the pod's infra (pause) container
	ContainerTypeContainer = "container" // a workload container
)
