
ALTER TABLE accounts ADD COLUMN merchant TEXT;
UPDATE accounts a SET merchant = COALESCE((SELECT m.id FROM merchants m WHERE m.account_id = a.id), 'default');
ALTER TABLE accounts ALTER COLUMN merchant SET NOT NULL;
ALTER TABLE accounts DROP CONSTRAINT accounts_pkey;
ALTER TABLE accounts ADD PRIMARY KEY (merchant, id);
