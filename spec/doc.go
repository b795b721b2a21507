// Package spec is phoenix's declarative language: the YAML documents users commit
// (Cluster, Template, Container, Feature), their strict loading with file:line
// positions, validation that reports every problem at once, and the resolution of
// clone lineage into inherited and effective feature sets.
//
// A Template or Container names where it comes from in spec.from: an OS template
// volume (a root) or another Template it is cloned from. A clone starts as a copy
// of its source, so every field a clone leaves unset takes its parent's value, and
// the features installed in the parent arrive with the clone. Which features a
// guest must install itself is therefore decided from the configured lineage, not
// by probing the guest: that is the point of Resolve.
package spec
