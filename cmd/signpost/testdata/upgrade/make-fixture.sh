#!/bin/sh
# make-fixture.sh BINARY OUT.tar.gz — writes the upgrade fixture: a data
# directory written by BINARY (signpost built from commit 75fbda3) holding a
# small dataset of every kind of thing the stored format keeps, and a
# manifest of the ids the server assigned. See README.md.
set -eu
bin=$1
out=$2
port=${PORT:-18675}
work=$(mktemp -d)
data=$work/data
B=http://127.0.0.1:$port/fhir
"$bin" serve --addr 127.0.0.1:$port --data "$data" >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -sf http://127.0.0.1:$port/healthz >/dev/null; do sleep 0.1; done
# Authorisation and audit on, as in production: the development server's
# tokens (its keys are in the data directory). The provider (RH8) keeps the
# directory and books; the GP practice (B81001) refers.
PROVIDER=$("$bin" token --data "$data" --client provider --org RH8 --role provider --scope 'system/*.cruds')
GP=$("$bin" token --data "$data" --client gp-system --org B81001 --role referrer --scope 'system/*.cruds')
TOKEN=$PROVIDER

# req METHOD PATH [BODY [IDEMPOTENCY-KEY]]: fails unless the answer is 2xx.
req() {
	if [ -n "${4:-}" ]; then set -- "$1" "$2" "$3" -H "Idempotency-Key: $4"; else set -- "$1" "$2" "${3:-}"; fi
	m=$1 p=$2 b=$3; shift 3
	set -- -H "Authorization: Bearer $TOKEN" "$@"
	if [ -n "$b" ]; then
		curl -sf -X "$m" -H 'Content-Type: application/fhir+json' "$@" --data "$b" "$B${p:+/$p}"
	else
		curl -sf -X "$m" "$@" "$B/$p"
	fi
}
ods=https://fhir.nhs.uk/Id/ods-organization-code
nhs=https://fhir.nhs.uk/Id/nhs-number
sct=http://snomed.info/sct
req PUT Organization/org-1 '{"resourceType":"Organization","id":"org-1","name":"Harbour Hospitals","identifier":[{"system":"'$ods'","value":"RH8"}]}' >/dev/null
TOKEN=$GP req PUT Organization/gp-1 '{"resourceType":"Organization","id":"gp-1","name":"Market Street Surgery","identifier":[{"system":"'$ods'","value":"B81001"}]}' >/dev/null
req PUT Location/loc-1 '{"resourceType":"Location","id":"loc-1","name":"Harbour General","position":{"latitude":51.0,"longitude":-1.75},"managingOrganization":{"reference":"Organization/org-1"}}' >/dev/null
req PUT Practitioner/prac-1 '{"resourceType":"Practitioner","id":"prac-1","name":[{"family":"Okafor","prefix":["Dr"]}]}' >/dev/null
req PUT PractitionerRole/role-1 '{"resourceType":"PractitionerRole","id":"role-1","practitioner":{"reference":"Practitioner/prac-1"},"organization":{"reference":"Organization/org-1"},"specialty":[{"coding":[{"system":"'$sct'","code":"394579002"}]}]}' >/dev/null
for hs in "hs-1 Cardiology 394579002" "hs-2 Dermatology 394582007"; do
	set -- $hs
	req PUT HealthcareService/$1 '{"resourceType":"HealthcareService","id":"'$1'","name":"'$2'","active":true,"providedBy":{"reference":"Organization/org-1"},"location":[{"reference":"Location/loc-1"}],"specialty":[{"coding":[{"system":"'$sct'","code":"'$3'"}]}]}' >/dev/null
done
# An update: hs-1 renamed (version 2).
req PUT HealthcareService/hs-1 '{"resourceType":"HealthcareService","id":"hs-1","name":"Cardiology Outpatients","active":true,"providedBy":{"reference":"Organization/org-1"},"location":[{"reference":"Location/loc-1"}],"specialty":[{"coding":[{"system":"'$sct'","code":"394579002"}]}]}' >/dev/null
req PUT Schedule/sched-1 '{"resourceType":"Schedule","id":"sched-1","actor":[{"reference":"HealthcareService/hs-1"}]}' >/dev/null
req PUT Schedule/sched-2 '{"resourceType":"Schedule","id":"sched-2","actor":[{"reference":"HealthcareService/hs-2"}]}' >/dev/null
for i in 1 2 3 4; do
	req PUT Slot/slot-$i '{"resourceType":"Slot","id":"slot-'$i'","status":"free","schedule":{"reference":"Schedule/sched-1"},"start":"2027-03-01T09:'$i'0:00Z","end":"2027-03-01T09:'$i'5:00Z"}' >/dev/null
done
req PUT Slot/slot-5 '{"resourceType":"Slot","id":"slot-5","status":"free","schedule":{"reference":"Schedule/sched-2"},"start":"2027-03-02T10:00:00Z","end":"2027-03-02T10:20:00Z"}' >/dev/null
# Patients: pat-1 updated twice (version 3); pat-3 deleted.
for v in Jones Jones-Smith Jones-Smyth; do
	req PUT Patient/pat-1 '{"resourceType":"Patient","id":"pat-1","birthDate":"1947-02-02","name":[{"family":"'$v'","given":["Ada"]}],"identifier":[{"system":"'$nhs'","value":"9990000018"}],"address":[{"postalCode":"LS1 4AP"}]}' >/dev/null
done
req PUT Patient/pat-3 '{"resourceType":"Patient","id":"pat-3","birthDate":"1990-01-01","name":[{"family":"Gone"}]}' >/dev/null
req DELETE Patient/pat-3 >/dev/null
# A deleted slot.
req DELETE Slot/slot-4 >/dev/null
# A transaction: pat-2 and a Practitioner.
req POST '' '{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:9a1c3f2e-0000-4000-8000-000000000002","resource":{"resourceType":"Patient","id":"pat-2","birthDate":"1980-05-17","name":[{"family":"Patel","given":["Ravi"]}],"identifier":[{"system":"'$nhs'","value":"9990000026"}]},"request":{"method":"PUT","url":"Patient/pat-2"}},
 {"resource":{"resourceType":"Practitioner","name":[{"family":"Patel","given":["Priya"]}],"identifier":[{"system":"https://fhir.hl7.org.uk/Id/gmc-number","value":"C1234567"}]},"request":{"method":"POST","url":"Practitioner"}}]}' >/dev/null
# A referral (UBRN and Task assigned by the server), booked (the Task moves on);
# its create and booking carry Idempotency-Keys.
TOKEN=$GP
sr=$(req POST ServiceRequest '{"resourceType":"ServiceRequest","status":"active","intent":"order","priority":"routine","category":[{"coding":[{"system":"https://signpost.example/fhir/CodeSystem/referral-source","code":"gp"}]}],"performerType":{"coding":[{"system":"'$sct'","code":"394579002"}]},"subject":{"reference":"Patient/pat-1"},"requester":{"reference":"Organization/gp-1"},"reasonCode":[{"text":"Palpitations"}]}' upgrade-sr-1)
srid=$(echo "$sr" | jq -r .id)
ubrn=$(echo "$sr" | jq -r '.identifier[] | select(.system == "https://fhir.nhs.uk/Id/UBRN") | .value')
appt=$(req POST Appointment '{"resourceType":"Appointment","status":"booked","basedOn":[{"reference":"ServiceRequest/'$srid'"}],"slot":[{"reference":"Slot/slot-1"}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}' upgrade-appt-1 | jq -r .id)
TOKEN=$PROVIDER
task=$(curl -sf -H "Authorization: Bearer $GP" "$B/Task?focus=ServiceRequest/$srid" | jq -r '.entry[0].resource.id')
# A booking, then cancelled: slot-2 free again, the appointment at version 2.
a2=$(req POST Appointment '{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/slot-2"}],"participant":[{"actor":{"reference":"Patient/pat-2"},"status":"accepted"}]}' upgrade-appt-2)
a2id=$(echo "$a2" | jq -r .id)
echo "$a2" | jq -c 'del(.meta) | .status = "cancelled" | .cancelationReason = {"text":"patient asked"}' | { read -r body; req PUT "Appointment/$a2id" "$body" >/dev/null; }
# A booking that stays: slot-5 for pat-2.
a3id=$(req POST Appointment '{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/slot-5"}],"participant":[{"actor":{"reference":"Patient/pat-2"},"status":"accepted"}]}' | jq -r .id)
related=$(curl -sf -H "Authorization: Bearer $TOKEN" "$B/Practitioner?identifier=C1234567" | jq -r '.entry[0].resource.id')

kill -TERM $pid
wait $pid || true
"$bin" check --data "$data"
jq -n --arg sr "$srid" --arg ubrn "$ubrn" --arg task "$task" --arg appt "$appt" --arg cancelled "$a2id" --arg booked "$a3id" --arg practitioner "$related" \
	'{serviceRequest: $sr, ubrn: $ubrn, task: $task, referralAppointment: $appt, cancelledAppointment: $cancelled, bookedAppointment: $booked, practitioner: $practitioner}' >"$work/manifest.json"
rm -f "$data"/*-wal "$data"/*-shm
tar -C "$work" -czf "$out" --owner=0 --group=0 --numeric-owner --mtime=2026-11-22 data manifest.json
echo "wrote $out"
