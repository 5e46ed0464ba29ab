import type { User } from './users.service.js';

/** The JSON shape of a user; never includes the password hash. */
export function toUserDto(user: User) {
  return {
    id: user.id,
    email: user.email,
    emailVerified: user.emailVerified,
    username: user.username,
    name: user.name,
    givenName: user.givenName,
    familyName: user.familyName,
    active: user.active,
    isStaff: user.isStaff,
    isAdmin: user.isAdmin,
    isDeveloper: user.isDeveloper,
    lastLoginAt: user.lastLoginAt,
    createdAt: user.createdAt,
    updatedAt: user.updatedAt,
  };
}
