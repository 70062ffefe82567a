package referral_test

import (
	"testing"

	"github.com/signpost-fhir/signpost/domain/referral"
)

func BenchmarkCheckNHSNumber(b *testing.B) {
	for b.Loop() {
		_ = referral.CheckNHSNumber("9434765919")
	}
}

func BenchmarkDistanceKM(b *testing.B) {
	p, q := referral.LatLon{Lat: 51.5, Lon: -0.12}, referral.LatLon{Lat: 52.5, Lon: -1.9}
	for b.Loop() {
		_ = referral.DistanceKM(p, q)
	}
}
