package buildertest

import _ "embed"

// MITLicense and ApacheLicense are the texts of an MIT and an Apache-2.0 LICENSE file, for
// modules whose licenses a test reads back from an SBOM.
var (
	//go:embed licenses/MIT
	MITLicense string
	//go:embed licenses/Apache-2.0
	ApacheLicense string
)
