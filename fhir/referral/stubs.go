package referral

import (
	"context"

	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/repo"
)

func (s *Service) questionnaireResponseRule(ctx context.Context, tx *repo.Tx, c *repo.Change) error { return nil }
func (s *Service) shortlistOp() *operation.Operation   { return &operation.Operation{Name: "shortlist"} }
func (s *Service) accessCodeOp() *operation.Operation  { return &operation.Operation{Name: "access-code"} }
func (s *Service) ubrnAccessOp() *operation.Operation  { return &operation.Operation{Name: "ubrn-access"} }
func (s *Service) convertOp() *operation.Operation     { return &operation.Operation{Name: "convert"} }
func (s *Service) reportOp(name string, f func()) *operation.Operation {
	return &operation.Operation{Name: name}
}
func (s *Service) referralTrends()  {}
func (s *Service) capacityGaps()    {}
func (s *Service) waitingTimes()    {}
func (s *Service) bookingOutcomes() {}

type Score struct{ WaitWeight, KMPerDay float64 }

var DefaultScore = Score{1, 5}

type LatLon struct{ Lat, Lon float64 }

type limiter struct{}

func newLimiter(n int, d interface{}) *limiter { return &limiter{} }
