// Errors a person can act on: an OperationOutcome (or a failure to reach
// the server) becomes a plain sentence and, where there is one, the next
// step. Pages never show a raw answer.

const ERROR_SYSTEM = 'https://signpost.example/fhir/CodeSystem/error';

/** PortalError is a failed call to the FHIR API. */
export class PortalError extends Error {
  constructor(status, outcome, fallback) {
    super(diagnostics(outcome) || fallback || `HTTP ${status}`);
    this.name = 'PortalError';
    this.status = status;
    this.outcome = outcome || null;
    this.code = detailCode(outcome);
  }
}

function detailCode(outcome) {
  for (const issue of (outcome && outcome.issue) || []) {
    for (const c of (issue.details && issue.details.coding) || []) {
      if (!c.system || c.system === ERROR_SYSTEM) return c.code;
    }
  }
  return '';
}

function diagnostics(outcome) {
  const issues = (outcome && outcome.issue) || [];
  return issues.map((i) => i.diagnostics || (i.details && i.details.text) || '').filter(Boolean).join(' ');
}

// What to tell the person, by Signpost's error code.
const byCode = {
  SLOT_NOT_AVAILABLE: { title: 'That time has just been taken', text: 'Someone else booked that appointment a moment ago. Choose another time: the list below is up to date.', retry: 'choose' },
  HOLD_EXPIRED: { title: 'We could not keep that time for you', text: 'We hold a time for 5 minutes while you confirm, and that time has passed. Choose a time again.', retry: 'choose' },
  PROPOSAL_INVALID: { title: 'That time is no longer on offer', text: 'The list of times was too old. Choose a time again from the updated list.', retry: 'choose' },
  BOOKING_QUESTIONNAIRE_REQUIRED: { title: 'Answer some questions first', text: 'This service needs a few answers from you before you can book.', retry: 'questionnaire' },
  NO_MATCHING_REFERRAL: { title: 'We could not find your referral', text: 'Check your booking reference number, access code and date of birth, and try again. They are in the letter or text message from your GP practice.' },
  TOO_MANY_ATTEMPTS: { title: 'Too many attempts', text: null },
  SERVICE_NOT_BOOKABLE: { title: 'This service books appointments itself', text: 'The service will contact you to arrange your appointment. You do not need to do anything now.' },
  PROVIDER_BOOKS: { title: 'The service will book your appointment', text: 'The service is looking at your referral first and will contact you to arrange your appointment.' },
  NO_SLOTS_AVAILABLE: { title: 'No appointments are free at the moment', text: 'Choose another service from your shortlist, or try again later.' },
  OUTSIDE_TWO_WEEK_WAIT: { title: 'This time is too late for your referral', text: 'Your referral is urgent: choose a time within 2 weeks of your referral, or call the booking line.' },
  APPOINTMENT_NOT_AMENDABLE: { title: 'This appointment cannot be changed', text: 'It may have been cancelled or already happened. Call the service if you need to change it.' },
  SERVICE_NOT_SUITABLE_FOR_REFERRAL: { title: 'This service is not suitable for your referral', text: 'Choose a service from your shortlist.' },
  PAS_NOT_RESPONDING: { title: 'The hospital did not confirm your booking', text: 'Nothing has been booked. Try again in a few minutes.' },
  PAS_RESPONDED_WITH_ERROR: { title: 'The hospital could not take this booking', text: 'Nothing has been booked. Choose another time, or call the service.', retry: 'choose' },
};

/**
 * explain turns an error into {title, text, action} for the person using
 * the portal: action is 'sign-in', 'choose' (choose another time),
 * 'questionnaire', 'retry' or undefined.
 */
export function explain(err) {
  if (!(err instanceof PortalError)) {
    return { title: 'Something went wrong', text: 'The page could not be shown. Try again, and if it keeps happening call the booking line.', action: 'retry' };
  }
  if (err.status === 0) {
    return { title: 'We could not reach the service', text: 'Check your internet connection and try again.', action: 'retry' };
  }
  if (err.status === 401) {
    return { title: 'Your sign-in has ended', text: 'For your security, sign-ins end after a while. Sign in again to carry on.', action: 'sign-in' };
  }
  const known = byCode[err.code];
  if (known) {
    return { title: known.title, text: known.text || plain(err.message), action: known.retry };
  }
  if (err.status === 403) {
    return { title: 'You cannot do this', text: 'Your sign-in does not allow this. If you think it should, call the booking line.' };
  }
  if (err.status === 404) {
    return { title: 'We could not find this', text: 'It may have been removed, or the link is wrong.' };
  }
  if (err.status === 429) {
    return { title: 'Too many requests', text: plain(err.message) || 'Wait a minute and try again.', action: 'retry' };
  }
  if (err.status >= 500) {
    return { title: 'Something went wrong on our side', text: 'Nothing was changed. Try again in a few minutes.', action: 'retry' };
  }
  return { title: 'That did not work', text: plain(err.message) || 'Check what you entered and try again.' };
}

// plain keeps the server's sentence but drops what only a developer
// reads: references, element paths and codes in brackets.
function plain(s) {
  if (!s) return '';
  return s.replace(/\b[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}\b/g, 'it').replace(/\s*\([^)]*\)/g, '').trim();
}
