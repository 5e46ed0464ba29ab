-- Written by hand: Prisma's schema language cannot declare a partial index.
-- These four columns are empty on most rows (a client-credentials token has none of them), and a
-- full index still stores an entry for every empty one, so every insert paid for four B-trees it
-- never needed. Only rows with a value are indexed now. Every lookup compares the column with a
-- value (`grant_id = ?`), which implies IS NOT NULL, so both SQLite and PostgreSQL use these.
DROP INDEX "oidc_payloads_grant_id_idx";
CREATE INDEX "oidc_payloads_grant_id_idx" ON "oidc_payloads"("grant_id") WHERE "grant_id" IS NOT NULL;

DROP INDEX "oidc_payloads_uid_idx";
CREATE INDEX "oidc_payloads_uid_idx" ON "oidc_payloads"("uid") WHERE "uid" IS NOT NULL;

DROP INDEX "oidc_payloads_user_code_idx";
CREATE INDEX "oidc_payloads_user_code_idx" ON "oidc_payloads"("user_code") WHERE "user_code" IS NOT NULL;

DROP INDEX "oidc_payloads_account_id_idx";
CREATE INDEX "oidc_payloads_account_id_idx" ON "oidc_payloads"("account_id") WHERE "account_id" IS NOT NULL;
