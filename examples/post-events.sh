#!/usr/bin/env bash
# Signs each Stripe event file as Stripe does and posts it to a running uchat-billing.
#
#   BASE=http://127.0.0.1:8080 STRIPE_WEBHOOK_SECRET=whsec_... examples/post-events.sh examples/events/*.json
#
# `uchat-billing demo --keep-running` prints an `export` line that sets both. The body is
# posted byte for byte as the file holds it; the signature is fresh. Posting a file again
# stores nothing new (the service deduplicates by event id). Needs bash, openssl, curl.
set -euo pipefail

: "${STRIPE_WEBHOOK_SECRET:?set STRIPE_WEBHOOK_SECRET to the webhook secret of the service (whsec_...)}"
BASE=${BASE:-http://127.0.0.1:8080}
# During a rotation the variable lists several secrets: sign with the first.
SECRET=${STRIPE_WEBHOOK_SECRET%%,*}
if [ $# -eq 0 ]; then
    echo "usage: $0 EVENT.json..." >&2
    exit 2
fi

for file in "$@"; do
    t=$(date +%s)
    sig=$({ printf '%s.' "$t"; cat "$file"; } | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')
    printf '%s: ' "$file"
    curl -sS --fail-with-body -X POST "$BASE/webhooks/stripe" \
        -H 'Content-Type: application/json' \
        -H "Stripe-Signature: t=$t,v1=$sig" \
        --data-binary "@$file"
    echo
done
