// Package trust holds root integration tests of trust-based runtime selection
// (docs/trust.md): the monitor driven directly with runc as the trusted
// runtime and a recording wrapper around runc as the untrusted one, and podman with
// conmon-go-runtime (the dispatcher) as --runtime and conmon-go as --conmon.
//
//	go test -count=1 ./hack/e2e/trust/
//
// CONMON_BINARY names the binary under test; without it ./cmd/conmon-go is built.
package trust
