-- Who holds a running consultation session (issue 8: nobody else may join or disturb it): the
-- moderator who admitted the patient, and the colleague the session was handed over to. Only
-- the knock that is admitted counts; the columns go with the knock at purge.
ALTER TABLE meeting_knocks ADD COLUMN admitted_by TEXT;  -- Matrix user ID
ALTER TABLE meeting_knocks ADD COLUMN handed_to TEXT;    -- Matrix user ID
