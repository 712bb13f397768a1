/** The drftpd version printed by `drftpd --version`. */
export const VERSION = "0.1.0";
