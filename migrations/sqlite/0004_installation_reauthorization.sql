-- Set when a refresh token stopped working (invalid_grant); configure clears it.
ALTER TABLE installations ADD COLUMN reauthorization_reason TEXT;
