-- AlterTable
ALTER TABLE "oidc_payloads" ADD COLUMN "client_id" TEXT;

-- CreateTable
CREATE TABLE "api_keys" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "client_id" TEXT NOT NULL,
    "key_hash" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "created_by_id" TEXT,
    "last_used_at" DATETIME,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "settings" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "value" JSONB NOT NULL,
    "updated_at" DATETIME NOT NULL,
    "updated_by" TEXT
);

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_users" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "email" TEXT NOT NULL,
    "email_normalized" TEXT NOT NULL,
    "username" TEXT,
    "username_normalized" TEXT,
    "given_name" TEXT,
    "family_name" TEXT,
    "name" TEXT,
    "email_verified" BOOLEAN NOT NULL DEFAULT false,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "is_staff" BOOLEAN NOT NULL DEFAULT false,
    "is_admin" BOOLEAN NOT NULL DEFAULT false,
    "is_developer" BOOLEAN NOT NULL DEFAULT false,
    "password_hash" TEXT,
    "last_login_at" DATETIME,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" DATETIME NOT NULL
);
INSERT INTO "new_users" ("active", "created_at", "email", "email_normalized", "email_verified", "family_name", "given_name", "id", "is_admin", "is_staff", "last_login_at", "name", "password_hash", "updated_at", "username", "username_normalized") SELECT "active", "created_at", "email", "email_normalized", "email_verified", "family_name", "given_name", "id", "is_admin", "is_staff", "last_login_at", "name", "password_hash", "updated_at", "username", "username_normalized" FROM "users";
DROP TABLE "users";
ALTER TABLE "new_users" RENAME TO "users";
CREATE UNIQUE INDEX "users_email_normalized_key" ON "users"("email_normalized");
CREATE UNIQUE INDEX "users_username_normalized_key" ON "users"("username_normalized");
CREATE TABLE "new_clients" (
    "client_id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "metadata" JSONB NOT NULL,
    "trusted" BOOLEAN NOT NULL DEFAULT false,
    "owner_id" TEXT,
    "resources" TEXT NOT NULL DEFAULT '',
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" DATETIME NOT NULL
);
INSERT INTO "new_clients" ("client_id", "created_at", "metadata", "name", "owner_id", "trusted", "updated_at") SELECT "client_id", "created_at", "metadata", "name", "owner_id", "trusted", "updated_at" FROM "clients";
DROP TABLE "clients";
ALTER TABLE "new_clients" RENAME TO "clients";
CREATE INDEX "clients_owner_id_idx" ON "clients"("owner_id");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys"("key_hash");

-- CreateIndex
CREATE INDEX "api_keys_client_id_idx" ON "api_keys"("client_id");

-- CreateIndex
CREATE INDEX "oidc_payloads_client_id_model_idx" ON "oidc_payloads"("client_id", "model");

