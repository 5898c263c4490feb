package lgdata

import _ "embed"

// The MIT licenses of the embedded tables. The MIT license asks that its
// notice travel with copies of the data, and the tables are compiled into
// every binary that imports this package, so the notices are embedded too.
var (
	//go:embed local-governments.LICENSE.txt
	localGovernmentsLicense string
	//go:embed japanese-holidays.LICENSE.txt
	japaneseHolidaysLicense string
)

// Notices returns the copyright and license notices of the embedded data
// (local-governments.csv, from the jisx0402 gem, and japanese-holidays.csv,
// from holiday_jp), for a binary's "licenses" or "about" output.
func Notices() string {
	return "local-governments.csv (jisx0402 gem data, modified):\n\n" + localGovernmentsLicense +
		"\n\njapanese-holidays.csv (holiday_jp data):\n\n" + japaneseHolidaysLicense
}
