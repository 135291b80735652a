#!/bin/bash

# Raycast script command: rewrite a prompt through AgentHub's local model (the raycast rule)
# and copy the result to the clipboard. Needs only bash and curl. AGENTHUB_URL (default
# http://127.0.0.1:9090) and AGENTHUB_TOKEN (when the hub has one) come from the environment.

# Required parameters:
# @raycast.schemaVersion 1
# @raycast.title Enhance Prompt
# @raycast.mode fullOutput

# Optional parameters:
# @raycast.icon 🪄
# @raycast.argument1 { "type": "text", "placeholder": "prompt" }
# @raycast.packageName AgentHub

# Documentation:
# @raycast.description Rewrite a prompt with AgentHub's local model and copy it to the clipboard
# @raycast.author AgentHub

url=${AGENTHUB_URL:-http://127.0.0.1:9090}
url=${url%/}

# The token as a curl config line, read through a pipe: never on a command line, where ps shows it.
auth() {
  [[ -n $AGENTHUB_TOKEN ]] && printf 'header = "Authorization: Bearer %s"\n' "${AGENTHUB_TOKEN//\"/\\\"}"
  return 0
}

# A bash string as a JSON string.
json_quote() {
  local s=$1 code hex ch esc
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  for code in {1..31}; do
    printf -v hex '%02x' "$code"
    printf -v ch "\\x$hex"
    printf -v esc '\\u%04x' "$code"
    s=${s//"$ch"/$esc}
  done
  printf '"%s"' "$s"
}

# The first string value of "KEY" in compact JSON, unescaped (0 when found).
json_string() {
  local rest=${1#*\"$2\":\"} out="" chunk c
  [[ $rest == "$1" ]] && return 1
  while [[ -n $rest ]]; do
    chunk=${rest%%[\"\\]*}
    out+=$chunk
    rest=${rest:${#chunk}}
    c=${rest:0:1}
    if [[ $c == '"' ]]; then
      printf '%s' "$out"
      return 0
    fi
    c=${rest:1:1}
    case $c in
      n) out+=$'\n' ;;
      t) out+=$'\t' ;;
      r) out+=$'\r' ;;
      b) out+=$'\b' ;;
      f) out+=$'\f' ;;
      u) printf -v c "\\u${rest:2:4}"; out+=$c; rest=${rest:4} ;;
      *) out+=$c ;;
    esac
    rest=${rest:2}
  done
  return 1
}


if [[ -z $1 ]]; then
  echo "Give a prompt to enhance."
  exit 1
fi
answer=$(printf '{"prompt":%s}' "$(json_quote "$1")" |
  curl -sS --max-time 120 -X POST -K <(auth) -H 'Content-Type: application/json' \
    -H 'X-Client-Name: raycast' --data-binary @- -w $'\n%{http_code}' "$url/ollama/enhance") || {
  echo "AgentHub is not reachable at $url"
  exit 1
}
status=${answer##*$'\n'}
body=${answer%$'\n'*}
if [[ $status != 200 ]]; then
  echo "AgentHub answered $status: $(json_string "$body" message || printf '%s' "$body")"
  exit 1
fi
prompt=$(json_string "$body" prompt) || {
  echo "unexpected answer: $body"
  exit 1
}
printf '%s\n' "$prompt"
if [[ $body != *'"enhanced":true'* ]]; then
  echo
  echo "(not enhanced: $(json_string "$body" reason || echo unknown); this is your prompt as it was)"
fi
for copy in pbcopy wl-copy "xclip -selection clipboard" "xsel --clipboard --input"; do
  if command -v "${copy%% *}" >/dev/null 2>&1; then
    printf '%s' "$prompt" | $copy && echo && echo "(copied to the clipboard)"
    break
  fi
done
