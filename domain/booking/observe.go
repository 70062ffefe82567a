package booking

import (
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

// Observer hears of booking outcomes, for metrics. Each outcome is told
// once, when the transaction that decided it has ended (however many times
// the store ran it): bookings and holds once committed, refusals whether
// or not the transaction went on to commit. The methods run on the
// goroutine of the write, before it is answered (Sweep's, for Released):
// they must be quick and never block.
type Observer interface {
	// Booked: an appointment's slots became busy (a booking, a hold
	// confirmed, or a booking another system confirmed).
	Booked()
	// Held: an appointment's slots became busy-tentative until its hold
	// expires ($hold, a pending Appointment, or a booking that awaits
	// another system's confirmation).
	Held()
	// Refused: a booking was refused with 409 because a slot was no
	// longer free (code ErrSlotNotAvailable) or its hold had expired
	// (ErrHoldExpired).
	Refused(code string)
	// Released: Sweep released n expired holds.
	Released(n int)
}

// nopObserver is the Observer of a Service configured without one.
type nopObserver struct{}

func (nopObserver) Booked()        {}
func (nopObserver) Held()          {}
func (nopObserver) Refused(string) {}
func (nopObserver) Released(int)   {}

// booked tells the observer of the claim of slots into status (busy or
// busy-tentative) once tx commits.
func (b *Service) booked(tx *write.Tx, slotStatus string) {
	tx.AfterEnd(func(committed bool) {
		switch {
		case !committed:
		case slotStatus == "busy":
			b.cfg.Observer.Booked()
		case slotStatus == "busy-tentative":
			b.cfg.Observer.Held()
		}
	})
}

// refused tells the observer of the conflict err, whose issue carries its
// code (WithDetails), once tx ends, and returns err.
func (b *Service) refused(tx *write.Tx, err *fhir.Error) error {
	code := err.Issues[0].Details
	tx.AfterEnd(func(bool) { b.cfg.Observer.Refused(code) })
	return err
}
