//! LiveKit-format access tokens (JWT, HS256).
