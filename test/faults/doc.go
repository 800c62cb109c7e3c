// Package faults is the fault-injection suite (make test-faults; part of make test): on the
// local stack (kwok's cluster with a real etcd, kube-apiserver and kube-controller-manager,
// cert-manager's controllers) with the operator as a process of its own, each case injects one
// kind of fault at moments drawn from a seeded random source, then checks the same invariants
// (invariants_test.go): every Tenant converges, no owned object is duplicated, misplaced or
// orphaned, no database password is regenerated, Retain keeps the namespace and volume, and
// deletion never hangs. The seed is printed; FAULTS_SEED replays the same schedule of faults
// (the moments are the same; what the operator was doing at them may differ, as timing does).
package faults
