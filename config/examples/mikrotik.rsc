# RouterOS 7 (7.15+ for require-message-auth) hotspot on pinradius.
# Paste into a terminal on the router, after replacing:
#   192.168.88.10      the machine running pinradius
#   CHANGE-ME-SECRET   the [[client]] secret in pinradius.toml
# pinradius.toml on the server (address = the router's address as pinradius sees it):
#   [[client]]
#   name = "lobby-mikrotik"
#   address = "192.168.88.1"
#   secret = "CHANGE-ME-SECRET"
#   business_id = 1
#   require_message_authenticator = true
#   coa_port = 3799
#   reply_attributes = { "Mikrotik-Rate-Limit" = "10M/10M" }

# 1. pinradius as the RADIUS server for the hotspot (auth 1812, accounting 1813).
/radius add service=hotspot address=192.168.88.10 secret="CHANGE-ME-SECRET" \
    authentication-port=1812 accounting-port=1813 timeout=2s \
    require-message-auth=yes-for-request-resp \
    comment="pinradius"

# 2. Accept Disconnect-Requests from pinradius (revoked codes, time run out).
/radius incoming set accept=yes port=3799

# 3. The hotspot server profile logs in through RADIUS, sends accounting and takes
#    the interim interval from pinradius's Acct-Interim-Interval.
#    login-by: http-chap (default; pinradius checks CHAP) and http-pap.
/ip hotspot profile set [find name=default] use-radius=yes radius-accounting=yes \
    radius-interim-update=received login-by=http-chap,http-pap

# 4. Let pinradius decide: Session-Timeout and Idle-Timeout come in its Access-Accept,
#    and it enforces each code's device and simultaneous-use limits itself, so the
#    router must not cap logins per code (a visitor's two devices share one code).
/ip hotspot user profile set [find name=default] shared-users=unlimited \
    keepalive-timeout=2m

# 5. A hotspot on the guest bridge, if there is none yet (interactive wizard):
# /ip hotspot setup

# Visitors type only their code: in the hotspot's login.html, copy the code field
# into both username and password before submitting, e.g.
#   <input name="username" id="code">
#   <input type="hidden" name="password" id="pw">
#   <form onsubmit="document.getElementById('pw').value=document.getElementById('code').value">
# (or set password_mode = "any" on this [[client]]).

# Check from the router:
# /radius monitor 0
# /log print where topics~"radius"
