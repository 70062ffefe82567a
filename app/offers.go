package app

import "github.com/signpost-fhir/signpost/domain/offer"

// startOffers builds the earlier-slot offers (domain/offer) over the
// booking and referral services: its rules watch every write of slots,
// appointments and request Tasks, and its operations join the API.
// Offers are registered even when off (Config.Offers false, the zero
// value, so that servers embedded for tests make none unless asked), so
// that the rule order stays one; off, no new offer is made.
func (a *App) startOffers() error {
	o, err := offer.New(offer.Config{HoldFor: a.Config.OfferHoldFor, Off: !a.Config.Offers, Location: a.Location,
		Logger: a.Config.Logger}, a.Writes, a.Search, a.Referral)
	if err != nil {
		return err
	}
	a.Offers = o
	for _, op := range o.Operations() {
		a.API.AddOperation(op)
	}
	return nil
}
