package pas

// Identifier systems the PAS adapter gives the ids it exchanges with a PAS.
//
// An appointment has two ids in HL7 v2 scheduling messages: the placer's
// (SCH-1, the system that asked for the booking) and the filler's (SCH-2,
// the system that keeps the schedule). Signpost's placer id is the
// Appointment's logical id, so it needs no identifier; the PAS's filler id
// is kept on the Appointment as an identifier whose system names the
// instance, so that two PAS instances' ids never collide.

// FillerSystem is the identifier system of the filler appointment ids
// (SCH-2) the PAS of instance gives: urn:signpost:adapter:<instance>:filler.
// Inbound messages find an appointment by it, and outbound messages send
// it back in SCH-2.
func FillerSystem(instance string) string {
	return "urn:signpost:adapter:" + instance + ":filler"
}
