package validation_test

import (
	"fmt"
	"log"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

func ExampleValidator_Validate() {
	v, err := validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	if err != nil {
		log.Fatal(err)
	}
	slot := `{
	  "resourceType": "Slot",
	  "schedule": {"reference": "Patient/p1"},
	  "status": "open",
	  "start": "2026-13-45T09:00:00Z",
	  "end": "2026-03-02T09:15:00Z"
	}`
	for _, is := range v.Validate([]byte(slot)) {
		fmt.Printf("%s [%s]\n", is.Diagnostics, is.Code)
	}
	// Output:
	// Slot.schedule.reference: "Patient/p1" refers to a Patient, but Slot.schedule may only refer to Schedule [invalid]
	// Slot.start: "2026-13-45T09:00:00Z" is not a valid instant [value]
	// Slot.status: "open" is not in the required value set http://hl7.org/fhir/ValueSet/slotstatus (busy | busy-tentative | busy-unavailable | entered-in-error | free) [code-invalid]
}
