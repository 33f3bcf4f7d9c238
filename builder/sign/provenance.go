package sign

import (
	"encoding/json"
	"fmt"
	"time"
)

// The in-toto and SLSA identifiers of slipway's provenance.
const (
	// StatementType is the _type of an in-toto statement v1.
	StatementType = "https://in-toto.io/Statement/v1"
	// SLSAProvenanceV1 is the predicate type of SLSA provenance v1 (cosign's
	// --type slsaprovenance1).
	SLSAProvenanceV1 = "https://slsa.dev/provenance/v1"
	// BuildType is the buildType of a slipway build: what its external parameters mean.
	BuildType = "https://slipway.dev/build/go/v1"
)

// Statement is an in-toto statement v1 with a SLSA provenance v1 predicate.
type Statement struct {
	Type          string     `json:"_type"`
	Subject       []Subject  `json:"subject"`
	PredicateType string     `json:"predicateType"`
	Predicate     Provenance `json:"predicate"`
}

// Subject is what a statement speaks of: an image index, by digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Provenance is the SLSA provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is what was built, and from what.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   map[string]string    `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
}

// ExternalParameters are the inputs a build's caller chose (or the app's configuration
// gave): what a verifier compares with what it expects.
type ExternalParameters struct {
	App             string   `json:"app"`
	SourceDigest    string   `json:"sourceDigest"`
	SourceURL       string   `json:"sourceURL,omitempty"`
	Version         string   `json:"version"`
	Commit          string   `json:"commit,omitempty"`
	Platforms       []string `json:"platforms"`
	Main            string   `json:"main"`
	Ldflags         string   `json:"ldflags"` // the template
	BaseImage       string   `json:"baseImage,omitempty"`
	SourceDateEpoch int64    `json:"sourceDateEpoch"`
}

// ResourceDescriptor is a resolved dependency (SLSA's ResourceDescriptor).
type ResourceDescriptor struct {
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
}

// RunDetails say who ran the build and when.
type RunDetails struct {
	Builder  Builder     `json:"builder"`
	Metadata RunMetadata `json:"metadata"`
}

// Builder names the slipway instance and its version.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// RunMetadata names the run: the build id and its times.
type RunMetadata struct {
	InvocationID string    `json:"invocationId"`
	StartedOn    time.Time `json:"startedOn"`
	FinishedOn   time.Time `json:"finishedOn"`
}

// ProvenanceStatement returns the statement's JSON: the same bytes for the same
// statement (struct fields in a fixed order, map keys sorted, times in UTC).
func ProvenanceStatement(subjectName, digest string, p Provenance) ([]byte, error) {
	algo, hexpart, ok := cutDigest(digest)
	if !ok {
		return nil, fmt.Errorf("subject digest %q", digest)
	}
	p.RunDetails.Metadata.StartedOn = p.RunDetails.Metadata.StartedOn.UTC().Truncate(time.Millisecond)
	p.RunDetails.Metadata.FinishedOn = p.RunDetails.Metadata.FinishedOn.UTC().Truncate(time.Millisecond)
	return json.Marshal(Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: subjectName, Digest: map[string]string{algo: hexpart}}},
		PredicateType: SLSAProvenanceV1,
		Predicate:     p,
	})
}

// ParseProvenance decodes a statement and checks that it is SLSA provenance v1 about
// digest.
func ParseProvenance(payload []byte, digest string) (*Statement, error) {
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: statement does not decode: %v", ErrMismatch, err)
	}
	if st.PredicateType != SLSAProvenanceV1 {
		return nil, fmt.Errorf("%w: predicate type %q", ErrMismatch, st.PredicateType)
	}
	algo, hexpart, _ := cutDigest(digest)
	for _, s := range st.Subject {
		if s.Digest[algo] == hexpart {
			return &st, nil
		}
	}
	return nil, fmt.Errorf("%w: the provenance is not about %s", ErrMismatch, digest)
}

func cutDigest(d string) (algo, hexpart string, ok bool) {
	for i := range len(d) {
		if d[i] == ':' {
			return d[:i], d[i+1:], i > 0 && i < len(d)-1
		}
	}
	return "", "", false
}
